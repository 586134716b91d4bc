#include "core/base/json_fields.h"
#include "webhook/admission.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/base/base64.h"
#include "core/base/json_limits.h"
#include "core/jsonpatch/json_patch.h"
#include "webhook/injector.h"

namespace tern::webhook {

using nlohmann::json;

namespace {

// Serialization that cannot throw: a parse error's message quotes the offending bytes, which
// need not be UTF-8; they are replaced rather than allowed to fail the answer.
std::string Dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

AdmissionAnswer BadRequest(std::string message) {
  AdmissionAnswer a;
  a.http_status = 400;
  a.outcome = "bad_request";
  a.body = Dump(json({{"error", message}}));
  a.reason = std::move(message);
  return a;
}

json Review(const std::string& api_version, json response) {
  return {{"apiVersion", api_version}, {"kind", "AdmissionReview"}, {"response", std::move(response)}};
}

std::string Describe(const json& kind) {
  if (!kind.is_object()) return "<missing>";
  std::string group = StringField(kind, "group");
  return (group.empty() ? "core" : group) + "/" + StringField(kind, "version") + " " + StringField(kind, "kind");
}

}  // namespace

AdmissionAnswer HandleAdmissionReview(std::string_view body, const MeshConfig& mesh) {
  if (JsonNestingDepth(body) > kMaxJsonNestingDepth) {
    return BadRequest("body nests objects and arrays deeper than " + std::to_string(kMaxJsonNestingDepth) + " levels");
  }
  json review;
  try {
    review = json::parse(body);
  } catch (const json::exception& e) {
    // parse_error names the byte offset and what was expected there; out_of_range a number
    // too large to represent.
    return BadRequest(std::string("body is not valid JSON: ") + e.what());
  }
  if (!review.is_object()) return BadRequest("body must be an AdmissionReview object");
  std::string api_version = StringField(review, "apiVersion");
  if (api_version != "admission.k8s.io/v1" && api_version != "admission.k8s.io/v1beta1") {
    return BadRequest("apiVersion: \"" + api_version + "\" is not admission.k8s.io/v1 or admission.k8s.io/v1beta1");
  }
  if (StringField(review, "kind") != "AdmissionReview") return BadRequest("kind: must be AdmissionReview");
  if (!review.contains("request") || !review["request"].is_object()) return BadRequest("request: is required");
  const json& req = review["request"];
  if (!req.contains("uid") || !req["uid"].is_string() || req["uid"].get<std::string>().empty()) {
    return BadRequest("request.uid: is required and must be a non-empty string");
  }

  AdmissionAnswer a;
  a.uid = req["uid"].get<std::string>();
  a.dry_run = BoolField(req, "dryRun", false);
  json response = {{"uid", a.uid}, {"allowed", true}};
  auto finish = [&](std::string outcome, std::string reason) {
    a.outcome = std::move(outcome);
    a.reason = std::move(reason);
    a.body = Dump(Review(api_version, response));
    return a;
  };

  const json kind = req.value("kind", json());
  bool is_pod = kind.is_object() && StringField(kind, "group") == "" && StringField(kind, "version") == "v1" &&
                StringField(kind, "kind") == "Pod";
  if (!is_pod) {
    // Misrouted by a webhook configuration: let the object through untouched, and say so.
    std::string why = "request.kind is " + Describe(kind) + "; the sidecar injector only mutates core/v1 Pod";
    response["warnings"] = {"tern-sidecar-injector ignored this request: " + why};
    return finish("ignored", why);
  }
  std::string operation = StringField(req, "operation", "CREATE");
  if (operation != "CREATE") {
    return finish("ignored", "operation " + operation + " is not mutated; sidecars are added at CREATE");
  }
  if (!req.contains("object") || !req["object"].is_object()) {
    response["allowed"] = false;
    response["status"] = {{"code", 400}, {"message", "request.object: is required and must be a Pod object"}};
    return finish("rejected", "request.object: is required and must be a Pod object");
  }
  const json& pod = req["object"];
  a.namespace_name = StringField(req, "namespace");
  if (a.namespace_name.empty() && pod.contains("metadata") && pod["metadata"].is_object()) {
    a.namespace_name = StringField(pod["metadata"], "namespace");
  }
  if (a.namespace_name.empty()) a.namespace_name = "default";
  if (pod.contains("metadata") && pod["metadata"].is_object()) {
    a.pod_name = StringField(pod["metadata"], "name");
    if (a.pod_name.empty()) a.pod_name = StringField(pod["metadata"], "generateName");
  }

  InjectionResult result = InjectPod(pod, {a.namespace_name, std::nullopt, std::nullopt}, mesh);
  switch (result.outcome) {
    case Outcome::kInjected: {
      // The patch is the bulk of the answer; it is spliced in as text rather than put into the
      // JSON tree, which would copy it and then escape-scan every base64 character again.
      std::string patch = Base64Encode(CreatePatch(pod, result.pod).dump());
      response["patchType"] = "JSONPatch";
      response["patch"] = "";
      AdmissionAnswer out = finish("injected", result.reason);
      const std::string placeholder = "\"patch\":\"\"";
      size_t at = out.body.find(placeholder);
      out.body.replace(at, placeholder.size(), "\"patch\":\"" + patch + "\"");
      return out;
    }
    case Outcome::kSkipped:
      return finish("skipped", result.reason);
    case Outcome::kRejected: {
      std::string message = "tern-sidecar-injector: the pod cannot be injected: " + result.reason;
      response["allowed"] = false;
      response["status"] = {{"code", 400}, {"reason", "BadRequest"}, {"message", message}};
      return finish("rejected", result.reason);
    }
  }
  return finish("skipped", result.reason);
}

}  // namespace tern::webhook
