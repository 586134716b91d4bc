#include "proxy/access_log.h"

#include <nlohmann/json.hpp>

namespace tern::proxy {

std::string EndpointString(const boost::asio::ip::tcp::endpoint& e) {
  return e.address().is_v6() ? "[" + e.address().to_string() + "]:" + std::to_string(e.port())
                             : e.address().to_string() + ":" + std::to_string(e.port());
}

boost::asio::ip::tcp::endpoint ToEndpoint(const UpstreamEndpoint& e) {
  namespace ip = boost::asio::ip;
  auto port = static_cast<uint16_t>(e.port);
  if (e.v6) return {ip::address_v6(e.ip), port};
  return {ip::address_v4(ip::address_v4::bytes_type{e.ip[0], e.ip[1], e.ip[2], e.ip[3]}), port};
}

void LogAccess(const HttpContext& ctx, const AccessEntry& e) {
  if (!ctx.log->Enabled(LogLevel::kInfo)) return;
  ctx.log->Info("access", {{"downstream", EndpointString(ctx.peer)},
                           {"protocol", e.protocol},
                           {"method", e.method},
                           {"path", e.path},
                           {"authority", e.authority},
                           {"route", e.route},
                           {"cluster", e.cluster},
                           {"upstream", e.upstream ? EndpointString(*e.upstream) : std::string()},
                           {"response_code", e.code},
                           {"response_flags", e.flags.ToString()},
                           {"duration_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::steady_clock::now() - e.start).count()},
                           {"config_version", ctx.table->snapshot().version}});
}

}  // namespace tern::proxy
