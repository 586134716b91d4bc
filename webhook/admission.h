// AdmissionReview (admission.k8s.io/v1, and v1beta1 answered in kind) in, response out — the
// webhook's whole protocol as a pure function over bytes. The HTTPS server only moves bytes.
//
// Errors before a request.uid is known get HTTP 400 with a message (there is nothing to echo);
// after that every answer is an AdmissionReview, with allowed=false and a message naming the
// field for a pod that cannot be injected, so kubectl shows the user what to fix.
#pragma once

#include <string>
#include <string_view>

#include "core/meshconfig/mesh_config.h"

namespace tern::webhook {

struct AdmissionAnswer {
  int http_status = 200;
  std::string body;          // JSON: an AdmissionReview, or {"error": ...} with a 400
  std::string outcome;       // injected | skipped | rejected | ignored | bad_request (metrics label)
  std::string reason;
  std::string uid, namespace_name, pod_name;
  bool dry_run = false;
};

AdmissionAnswer HandleAdmissionReview(std::string_view body, const MeshConfig& mesh);

}  // namespace tern::webhook
