#include "core/kube/reflector.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cctype>
#include <random>

namespace tern::kube {

namespace {

using json = nlohmann::json;

// A query parameter's value, percent-encoded (continue tokens carry '=', '/' and '+').
std::string QueryEscape(const std::string& v) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : v) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// A Status object's (or any answer's) message, for a report.
std::string MessageOf(const json& status, const std::string& raw = "") {
  if (status.is_object() && status.contains("message") && status["message"].is_string()) {
    return status["message"].get<std::string>();
  }
  return raw.substr(0, 200);
}

const json* Field(const json& j, const char* name) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(name);
  return it == j.end() ? nullptr : &*it;
}

}  // namespace

Reflector::Reflector(Client& client, ResourceKind kind, ReflectorOptions options, ReflectorSink& sink)
    : client_(client), kind_(std::move(kind)), options_(std::move(options)), sink_(sink) {}

Reflector::~Reflector() {
  Stop();
  for (int fd : stop_pipe_) {
    if (fd >= 0) close(fd);
  }
}

Status Reflector::Start() {
  if (pipe2(stop_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) return Status::Error("watch " + path() + ": pipe failed");
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void Reflector::Stop() {
  if (stopping_.exchange(true) || !thread_.joinable()) return;
  (void)!write(stop_pipe_[1], "x", 1);
  thread_.join();
}

std::string Reflector::resource_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return resource_version_;
}

void Reflector::SetVersion(std::string rv) {
  std::lock_guard<std::mutex> lock(mu_);
  resource_version_ = std::move(rv);
}

bool Reflector::Sleep(std::chrono::milliseconds d) {
  pollfd p{stop_pipe_[0], POLLIN, 0};
  poll(&p, 1, static_cast<int>(d.count()));
  return !stopping_;
}

void Reflector::Run() {
  std::minstd_rand rng(std::random_device{}());
  auto backoff = options_.backoff_initial;
  // Waits out the back-off (jittered between half and all of it), then doubles it.
  auto back_off = [&] {
    const auto spread = static_cast<unsigned long>(backoff.count() / 2 + 1);
    auto wait = backoff / 2 + std::chrono::milliseconds(static_cast<long>(rng() % spread));
    backoff = std::min(backoff * 2, options_.backoff_max);
    return Sleep(wait);
  };
  while (!stopping_) {
    if (resource_version().empty()) {
      if (Status st = List(); !st.ok()) {
        if (stopping_) return;
        sink_.Problem(kind_, st.message());
        if (!back_off()) return;
        continue;
      }
    }
    switch (Watch()) {
      case WatchEnd::kResume: backoff = options_.backoff_initial; break;  // ended normally: resumed at once
      case WatchEnd::kRelist: SetVersion(""); break;
      case WatchEnd::kFailed:
        if (!back_off()) return;
        break;
    }
  }
}

Status Reflector::List() {
  std::vector<json> objects;
  std::string next;
  std::string version;
  for (int page = 0; page < 100000; ++page) {  // a continue token that never ends is the server's bug, bounded
    std::string request = path() + "?limit=" + std::to_string(options_.page_size);
    if (!next.empty()) request += "&continue=" + QueryEscape(next);
    auto res = client_.Get(request);
    if (!res.ok()) return res.status();
    if (res->status == 410 && !next.empty()) {
      // The continue token expired mid-list: start the list over.
      objects.clear();
      next.clear();
      continue;
    }
    if (res->status == 404 && !fallback_ && !kind_.fallback_path.empty()) {
      // This version is not served (an older CRD): the same objects, read at the older one.
      sink_.Problem(kind_, "LIST " + path() + ": 404 " + MessageOf(res->body) + "; reading " + kind_.fallback_path);
      fallback_ = true;
      objects.clear();
      next.clear();
      continue;
    }
    if (res->status != 200) {
      return Status::Error("LIST " + path() + ": " + std::to_string(res->status) + " " + MessageOf(res->body));
    }
    const json* items = Field(res->body, "items");
    const json* meta = Field(res->body, "metadata");
    if (!items || (!items->is_array() && !items->is_null())) return Status::Error("LIST " + path() + ": items: not a list");
    if (!meta || !Field(*meta, "resourceVersion") || !(*meta)["resourceVersion"].is_string()) {
      return Status::Error("LIST " + path() + ": metadata.resourceVersion: missing");
    }
    if (items->is_array()) {
      for (const json& item : *items) {
        if (!item.is_object()) return Status::Error("LIST " + path() + ": items: an item is not an object");
        json object = item;
        if (!object.contains("kind")) object["kind"] = kind_.kind;
        if (!object.contains("apiVersion")) object["apiVersion"] = api_version();
        objects.push_back(std::move(object));
      }
    }
    version = (*meta)["resourceVersion"].get<std::string>();
    const json* cont = Field(*meta, "continue");
    next = cont && cont->is_string() ? cont->get<std::string>() : "";
    if (next.empty()) break;
  }
  ++lists_;
  sink_.Replace(kind_, std::move(objects));
  SetVersion(version);
  synced_ = true;
  return Status::Ok();
}

Reflector::WatchEnd Reflector::Watch() {
  const std::string request = path() + "?watch=1&allowWatchBookmarks=true&resourceVersion=" +
                           QueryEscape(resource_version()) + "&timeoutSeconds=" +
                           std::to_string(options_.watch_timeout.count());
  ++watches_;
  events_ = 0;
  WatchEnd end = WatchEnd::kResume;
  auto res = client_.GetLines(request, options_.limits, stop_pipe_[0],
                              [&](std::string_view line, bool oversized) { return OnEvent(line, oversized, end); });
  if (stopping_) return WatchEnd::kFailed;
  if (!res.ok()) {
    sink_.Problem(kind_, res.status().message());
    return WatchEnd::kFailed;
  }
  if (res->status == 410) return WatchEnd::kRelist;
  if (res->status != 200) {
    json body = json::parse(res->body, nullptr, false);
    sink_.Problem(kind_, "WATCH " + path() + ": " + std::to_string(res->status) + " " + MessageOf(body, res->body));
    return WatchEnd::kFailed;
  }
  if (res->cut) {
    sink_.Problem(kind_, "WATCH " + path() + ": the connection ended mid-stream after " + std::to_string(events_) +
                             " events; resumed from " + resource_version());
    return end == WatchEnd::kResume ? WatchEnd::kFailed : end;
  }
  return end;
}

bool Reflector::OnEvent(std::string_view line, bool oversized, WatchEnd& end) {
  const std::string where = "WATCH " + path() + ": event " + std::to_string(++events_);
  if (oversized) {
    // Skipped, never applied: the next event's version moves the watch on past it.
    sink_.Problem(kind_, where + ": over " + std::to_string(options_.limits.max_line) + " bytes, skipped: " +
                             std::string(line.substr(0, 120)));
    return true;
  }
  json event = json::parse(line, nullptr, false);
  const json* type = Field(event, "type");
  const json* object = Field(event, "object");
  if (event.is_discarded() || !type || !type->is_string() || !object || !object->is_object()) {
    // A garbled stream: ended, and resumed from the last version applied.
    sink_.Problem(kind_, where + ": not a watch event (type and object): " + std::string(line.substr(0, 120)));
    end = WatchEnd::kFailed;
    return false;
  }
  const std::string t = type->get<std::string>();
  if (t == "ERROR") {
    const json* code = Field(*object, "code");
    if (code && code->is_number_integer() && code->get<int>() == 410) {
      end = WatchEnd::kRelist;  // the version is too old: a new LIST
      return false;
    }
    sink_.Problem(kind_, where + ": ERROR " + MessageOf(*object));
    end = WatchEnd::kFailed;
    return false;
  }
  const json* meta = Field(*object, "metadata");
  const json* rv = meta ? Field(*meta, "resourceVersion") : nullptr;
  if (!rv || !rv->is_string() || rv->get<std::string>().empty()) {
    sink_.Problem(kind_, where + ": object.metadata.resourceVersion: missing");
    end = WatchEnd::kFailed;
    return false;
  }
  std::string version = rv->get<std::string>();
  if (t == "BOOKMARK") {
    SetVersion(std::move(version));
    return true;
  }
  WatchEventType kind;
  if (t == "ADDED") kind = WatchEventType::kAdded;
  else if (t == "MODIFIED") kind = WatchEventType::kModified;
  else if (t == "DELETED") kind = WatchEventType::kDeleted;
  else {
    sink_.Problem(kind_, where + ": type: unknown \"" + t.substr(0, 40) + "\"");
    return true;  // a kind of event this client does not know: skipped
  }
  json copy = *object;
  if (!copy.contains("kind")) copy["kind"] = kind_.kind;
  if (!copy.contains("apiVersion")) copy["apiVersion"] = api_version();
  sink_.Apply(kind_, kind, std::move(copy));
  SetVersion(std::move(version));
  return true;
}

}  // namespace tern::kube
