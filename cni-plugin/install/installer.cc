#include "cni-plugin/install/installer.h"

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cni-plugin/install/conflist.h"
#include "core/base/files.h"
#include "core/base/json_limits.h"

namespace tern::cni {

using nlohmann::json;

namespace {

Result<std::vector<std::string>> ListDir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return Status::Error("cannot list " + dir + ": " + std::strerror(errno));
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != ".." && n[0] != '.') names.push_back(n);
  }
  closedir(d);
  return names;
}

Result<json> ReadJsonFile(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  if (JsonNestingDepth(*text) > kMaxJsonNestingDepth) return Status::Error(path + ": nests too deep");
  try {
    return json::parse(*text);
  } catch (const json::exception& e) {
    return Status::Error(path + ": not valid JSON: " + e.what());
  }
}

// Writes `content` unless the file already holds exactly it.
Result<bool> WriteIfDifferent(const std::string& path, const std::string& content, unsigned mode) {
  auto current = ReadFile(path);
  if (current.ok() && *current == content) return false;
  Status s = WriteFileAtomically(path, content, mode);
  if (!s.ok()) return s;
  return true;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Installer::Installer(InstallOptions options, kube::ClusterConfig cluster)
    : options_(std::move(options)), cluster_(std::move(cluster)) {}

json Installer::PluginEntry() const {
  return {{"type", kPluginType},
          {"kubernetes",
           {{"kubeconfig", options_.host_conf_dir + "/" + options_.kubeconfig_name},
            {"excludeNamespaces", options_.exclude_namespaces},
            {"timeoutMs", options_.api_timeout_ms}}}};
}

std::string Installer::KubeconfigText() const {
  std::string host = cluster_.host.find(':') != std::string::npos ? "[" + cluster_.host + "]" : cluster_.host;
  return RenderPluginKubeconfig("https://" + host + ":" + std::to_string(cluster_.port), cluster_.ca_pem,
                                cluster_.token);
}

Result<std::string> Installer::ConfigFile() const {
  auto names = ListDir(options_.conf_dir);
  if (!names.ok()) return names.status();
  auto picked = PickConfigFile(*names);
  if (!picked) {
    return Status::Error("no CNI configuration in " + options_.conf_dir +
                         " yet (tern-cni chains after the node's network plugin, which has not written its file)");
  }
  return options_.conf_dir + "/" + *picked;
}

Result<InstallReport> Installer::Install() {
  InstallReport report;
  // The binary first, then the kubeconfig: the configuration that makes the runtime call
  // tern-cni is written only once everything it needs is in place.
  auto binary = ReadFile(options_.plugin_source);
  if (!binary.ok()) return binary.status().Context("plugin binary");
  auto wrote = WriteIfDifferent(options_.bin_dir + "/" + kPluginType, *binary, 0755);
  if (!wrote.ok()) return wrote.status();
  report.binary_written = *wrote;
  wrote = WriteIfDifferent(options_.conf_dir + "/" + options_.kubeconfig_name, KubeconfigText(), 0600);
  if (!wrote.ok()) return wrote.status();
  report.kubeconfig_written = *wrote;

  auto file = ConfigFile();
  if (!file.ok()) return file.status();
  auto config = ReadJsonFile(*file);
  if (!config.ok()) return config.status();
  auto chained = InsertPlugin(*config, PluginEntry());
  if (!chained.ok()) return chained.status().Context(*file);
  // A single-plugin file becomes a .conflist of the same name; the .conf goes once the list
  // is in place, so the runtime always finds a valid file.
  std::string target = *file;
  if (!config->contains("plugins")) target = file->substr(0, file->rfind('.')) + ".conflist";
  wrote = WriteIfDifferent(target, chained->dump(2) + "\n", 0644);
  if (!wrote.ok()) return wrote.status();
  report.config_written = *wrote;
  if (target != *file && ::unlink(file->c_str()) != 0 && errno != ENOENT) {
    return Status::Error("cannot remove " + *file + " after writing " + target + ": " + std::strerror(errno));
  }
  report.config_file = target;
  return report;
}

Status Installer::Check() {
  auto binary = ReadFile(options_.plugin_source);
  auto installed = ReadFile(options_.bin_dir + "/" + kPluginType);
  if (!binary.ok() || !installed.ok() || *binary != *installed) {
    return Status::Error(options_.bin_dir + "/" + kPluginType + " is missing or not this version");
  }
  auto kubeconfig = ReadFile(options_.conf_dir + "/" + options_.kubeconfig_name);
  if (!kubeconfig.ok() || *kubeconfig != KubeconfigText()) {
    return Status::Error(options_.conf_dir + "/" + options_.kubeconfig_name + " is missing or stale");
  }
  auto file = ConfigFile();
  if (!file.ok()) return file.status();
  auto config = ReadJsonFile(*file);
  if (!config.ok()) return config.status();
  if (!HasPluginLast(*config, PluginEntry())) return Status::Error(*file + " does not chain tern-cni last");
  return Status::Ok();
}

Status Installer::Uninstall() {
  auto names = ListDir(options_.conf_dir);
  if (!names.ok()) return names.status();
  for (const auto& name : *names) {
    if (!EndsWith(name, ".conflist") && !EndsWith(name, ".conf") && !EndsWith(name, ".json")) continue;
    std::string path = options_.conf_dir + "/" + name;
    auto config = ReadJsonFile(path);
    if (!config.ok()) continue;  // not ours to judge; leave it as it is
    json without = RemovePlugin(*config);
    if (without == *config) continue;
    Status s = WriteFileAtomically(path, without.dump(2) + "\n", 0644);
    if (!s.ok()) return s;
  }
  for (const std::string& path :
       {options_.conf_dir + "/" + options_.kubeconfig_name, options_.bin_dir + "/" + std::string(kPluginType)}) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Status::Error("cannot remove " + path + ": " + std::strerror(errno));
    }
  }
  return Status::Ok();
}

}  // namespace tern::cni
