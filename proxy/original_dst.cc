#include "proxy/original_dst.h"

#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

namespace tern::proxy {

bool OriginalDestination(int fd, bool ipv6, sockaddr_storage* out) {
  socklen_t len = sizeof *out;
  int rc = ipv6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, out, &len)
                : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, out, &len);
  return rc == 0;
}

}  // namespace tern::proxy
