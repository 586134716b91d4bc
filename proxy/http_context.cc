#include "proxy/http_context.h"

#include "proxy/config_store.h"

namespace tern::proxy {

void FollowCurrentSnapshot(HttpContext& ctx) {
  if (!ctx.config) return;
  const uint64_t generation = ctx.config->generation();  // before Current(): a swap between is seen next time
  if (generation == ctx.table_generation) return;
  ctx.table_generation = generation;
  ctx.table = ctx.config->Current();
  const std::string ip = ctx.original.address().to_string();
  if (ctx.inbound) ctx.app_protocol = ctx.table->InboundProtocol(ip, ctx.original.port());
  else ctx.host = ctx.table->ForDestination(ip, ctx.original.port());
}

}  // namespace tern::proxy
