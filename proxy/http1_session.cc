#include "proxy/http1_session.h"

#include <array>
#include <span>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <map>
#include <random>

#include "proxy/http1_request.h"

namespace tern::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using error_code = boost::system::error_code;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

namespace {

struct RelayError {
  error_code ec;
  bool reading = false;  // the error came from the side being read (a malformed body, a reset)
  explicit operator bool() const { return static_cast<bool>(ec); }
};

// Streams a message whose header `p` has read from `in` to `out`, the body in chunks as they
// arrive (the serializer re-frames chunked bodies). When body bytes are already buffered, the
// header goes out with them in one gather write (a small message costs one write); when none
// are, the header goes out alone at once, so a streaming answer is not held back.
template <bool isRequest>
asio::awaitable<RelayError> Relay(tcp::socket& in, beast::flat_buffer& buffer, http::parser<isRequest, http::buffer_body>& p,
                                  tcp::socket& out, std::span<char> chunk) {
  http::serializer<isRequest, http::buffer_body> sr{p.get()};
  auto& body = p.get().body();
  bool first = true;
  for (;;) {
    if (!p.is_done() && (!first || buffer.size() > 0)) {
      body.data = chunk.data();
      body.size = chunk.size();
      auto [rec, rn] = co_await http::async_read(in, buffer, p, kNoThrow);
      if (rec == http::error::need_buffer) rec = {};
      if (rec) co_return RelayError{rec, true};
      body.size = chunk.size() - body.size;
      body.data = chunk.data();
      body.more = !p.is_done();
    } else {
      body.data = nullptr;
      body.size = 0;
      body.more = !p.is_done();
    }
    first = false;
    auto [wec, wn] = co_await http::async_write(out, sr, kNoThrow);
    if (wec == http::error::need_buffer) wec = {};
    if (wec) co_return RelayError{wec, false};
    if (sr.is_done()) break;
  }
  co_return RelayError{};
}

// Reads until the buffer holds a whole header section ("\r\n\r\n"), within `limit` bytes.
// The raw bytes are checked before any parser sees them (see RawHeaderProblem).
asio::awaitable<error_code> ReadRawHeader(tcp::socket& s, beast::flat_buffer& buf, size_t limit) {
  for (;;) {
    std::string_view data(static_cast<const char*>(buf.data().data()), buf.size());
    if (data.find("\r\n\r\n") != std::string_view::npos) co_return error_code{};
    // A request line may be preceded by empty lines (RFC 9112 2.2); anything else counts.
    if (buf.size() > limit) co_return http::error::header_limit;
    auto [ec, n] = co_await s.async_read_some(buf.prepare(16384), kNoThrow);
    if (ec) co_return ec;
    buf.commit(n);
  }
}


asio::awaitable<error_code> LocalReply(tcp::socket& s, unsigned version, http::status status, std::string body,
                                       bool keep_alive, const std::string& location = "") {
  http::response<http::string_body> res{status, version};
  res.set(http::field::server, "tern");
  res.set(http::field::content_type, "text/plain");
  if (!location.empty()) res.set(http::field::location, location);
  res.body() = std::move(body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  auto [ec, n] = co_await http::async_write(s, res, kNoThrow);
  co_return ec;
}

void ApplyHeaderOps(http::fields& h, const istio::HeaderOperations& ops) {
  for (const auto& name : ops.remove) h.erase(name);
  for (const auto& [name, value] : ops.set) h.set(name, value);
  for (const auto& [name, value] : ops.add) h.insert(name, value);
}

// Envoy's prefix rewrite: the matched uri prefix (or exact uri) is replaced.
std::string RewritePath(std::string_view target, const Route& route, const istio::HttpRewrite& rewrite) {
  if (!rewrite.uri) return std::string(target);
  for (const auto& m : route.matches) {
    const auto& uri = m.spec->uri;
    if (uri && uri->kind != istio::StringMatch::Kind::kRegex && target.substr(0, uri->value.size()) == uri->value) {
      return *rewrite.uri + std::string(target.substr(uri->value.size()));
    }
  }
  // No prefix to replace (a regex or header match): the path is replaced, the query kept.
  size_t q = target.find('?');
  return *rewrite.uri + (q == std::string_view::npos ? "" : std::string(target.substr(q)));
}

}  // namespace

std::string EndpointString(const tcp::endpoint& e) {
  return e.address().is_v6() ? "[" + e.address().to_string() + "]:" + std::to_string(e.port())
                             : e.address().to_string() + ":" + std::to_string(e.port());
}

asio::awaitable<void> ServeHttp1(tcp::socket down, std::string head, Http1Context ctx) {
  auto ex = down.get_executor();
  beast::flat_buffer dbuf;
  dbuf.commit(asio::buffer_copy(dbuf.prepare(head.size()), asio::buffer(head)));
  std::map<tcp::endpoint, std::unique_ptr<tcp::socket>> upstreams;  // kept alive between requests
  std::map<tcp::endpoint, std::unique_ptr<beast::flat_buffer>> ubufs;
  thread_local std::minstd_rand rng{std::random_device{}()};
  error_code ignored;
  const tcp::endpoint peer = down.remote_endpoint(ignored);
  std::vector<std::pair<std::string_view, std::string_view>> headers;  // reused per request
  std::vector<char> chunk(16384);  // the body relay buffer, one per connection
  // Keep-alive clients repeat their Host: the last authority's service is remembered.
  std::string last_authority;
  const VirtualHost* last_host = nullptr;

  for (;;) {
    auto start = std::chrono::steady_clock::now();
    http::request_parser<http::buffer_body> req_p;
    LimitRequestParser(req_p);
    asio::steady_timer header_timer(ex);
    header_timer.expires_after(ctx.header_timeout);
    auto got = co_await (ReadRawHeader(down, dbuf, kMaxHeaderBytes) || header_timer.async_wait(kNoThrow));
    if (got.index() == 1) co_return;  // slow header: cut
    error_code hec = std::get<0>(got);
    if (hec == asio::error::eof || hec == asio::error::connection_reset) co_return;
    if (!hec) {
      std::string_view data(static_cast<const char*>(dbuf.data().data()), dbuf.size());
      std::string problem = RawHeaderProblem(data.substr(0, data.find("\r\n\r\n") + 2));
      if (!problem.empty()) {
        co_await LocalReply(down, 11, http::status::bad_request, "bad request: " + problem + "\n", false);
        ctx.log->Info("access", {{"downstream", EndpointString(peer)}, {"response_code", 400}, {"response_flags", "DPE"},
                                 {"error", problem}});
        co_return;
      }
      // The whole header is buffered: this parses it without reading.
      auto [pec, pn] = co_await http::async_read_header(down, dbuf, req_p, kNoThrow);
      hec = pec;
    }
    if (hec) {
      co_await LocalReply(down, 11, hec == http::error::header_limit ? http::status::request_header_fields_too_large
                                                                      : http::status::bad_request,
                          "bad request: " + hec.message() + "\n", false);
      ctx.log->Info("access", {{"downstream", EndpointString(peer)}, {"response_code", 400}, {"response_flags", "DPE"},
                               {"error", hec.message()}});
      co_return;
    }
    auto& req = req_p.get();
    if (const char* problem = FramingProblem(req)) {
      co_await LocalReply(down, req.version(), http::status::bad_request, std::string("bad request: ") + problem + "\n", false);
      co_return;
    }
    std::string method(req.method_string()), target(req.target()), authority(req[http::field::host]);
    // Views into the parser's own storage (valid while `req` lives); the router compares names
    // case-insensitively.
    headers.clear();
    for (const auto& f : req) headers.emplace_back(f.name_string(), f.value());
    const auto& own_labels = ctx.table->snapshot().workload.labels;
    RequestView view{.method = method, .path = target, .authority = authority, .headers = &headers,
                     .source_labels = &own_labels, .port = static_cast<uint32_t>(ctx.original.port())};

    // Route: the service the authority names, else the one the connection was addressed to.
    const VirtualHost* vh = nullptr;
    if (!authority.empty()) {
      if (authority != last_authority) {
        last_authority = authority;
        last_host = ctx.table->ForAuthority(authority, ctx.original.port());
      }
      vh = last_host;
    }
    if (!vh) vh = ctx.host;
    const Route* route = vh ? ctx.table->Match(*vh, view) : nullptr;
    std::string flags = "-", cluster_name, upstream_str;
    unsigned code = 0;
    bool keep_alive = req.keep_alive();
    auto log_line = [&] {
      if (!ctx.log->Enabled(LogLevel::kInfo)) return;  // the JSON is not built for nothing
      ctx.log->Info("access", {{"downstream", EndpointString(peer)},
                               {"method", method},
                               {"path", target},
                               {"authority", authority},
                               {"route", route && route->spec ? route->virtual_service : ""},
                               {"cluster", cluster_name},
                               {"upstream", upstream_str},
                               {"response_code", code},
                               {"response_flags", flags},
                               {"duration_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                                   std::chrono::steady_clock::now() - start).count()},
                               {"config_version", ctx.table->snapshot().version}});
    };
    auto local = [&](http::status status, std::string body, std::string f, std::string location = "") -> asio::awaitable<bool> {
      flags = std::move(f);
      code = static_cast<unsigned>(status);
      if (!req_p.is_done()) keep_alive = false;  // a body we answer without reading ends the connection
      error_code ec = co_await LocalReply(down, req.version(), status, std::move(body), keep_alive, location);
      log_line();
      co_return !ec && keep_alive;
    };
    if (!route) {
      if (!co_await local(http::status::not_found, "no route\n", "NR")) co_return;
      continue;
    }
    const istio::HttpRoute* spec = route->spec;
    if (spec && spec->direct_response) {
      if (!co_await local(static_cast<http::status>(spec->direct_response->status), spec->direct_response->body, "-")) co_return;
      continue;
    }
    if (spec && spec->redirect) {
      const auto& r = *spec->redirect;
      std::string location = (r.scheme.empty() ? "http" : r.scheme) + "://" + (r.authority.empty() ? authority : r.authority) +
                             (r.uri.empty() ? target : r.uri);
      if (!co_await local(static_cast<http::status>(r.redirect_code), "", "-", location)) co_return;
      continue;
    }
    const WeightedCluster* wc = RouteTable::Pick(*route, rng() | (static_cast<uint64_t>(rng()) << 32));
    const Cluster* cluster = wc ? wc->cluster : nullptr;
    if (cluster) cluster_name = cluster->name;
    if (!cluster || cluster->endpoints.empty()) {
      std::string f = cluster && !cluster->known_subset ? "NC" : "UH";
      if (!co_await local(http::status::service_unavailable, "no healthy upstream\n", f)) co_return;
      continue;
    }
    const UpstreamEndpoint& e = cluster->endpoints[rng() % cluster->endpoints.size()];
    error_code aec;
    tcp::endpoint uep(asio::ip::make_address(e.address, aec), static_cast<uint16_t>(e.port));
    upstream_str = EndpointString(uep);
    auto& slot = upstreams[uep];
    auto& ubuf = ubufs[uep];
    if (!slot || !slot->is_open()) {
      slot = std::make_unique<tcp::socket>(ex);
      ubuf = std::make_unique<beast::flat_buffer>();
      asio::steady_timer timer(ex);
      timer.expires_after(ctx.connect_timeout);
      auto c = co_await (slot->async_connect(uep, kNoThrow) || timer.async_wait(kNoThrow));
      if (c.index() == 1 || std::get<0>(std::get<0>(c))) {
        slot.reset();
        if (!co_await local(http::status::service_unavailable, "upstream connect error\n", "UF")) co_return;
        continue;
      }
      slot->set_option(tcp::no_delay(true), aec);
    }
    // The request as the upstream gets it.
    if (spec) {
      if (spec->rewrite) {
        req.target(RewritePath(target, *route, *spec->rewrite));
        if (spec->rewrite->authority) req.set(http::field::host, *spec->rewrite->authority);
      }
      ApplyHeaderOps(req.base(), spec->headers.request);
    }
    if (wc->headers) ApplyHeaderOps(req.base(), wc->headers->request);
    RelayError rec = co_await Relay<true>(down, dbuf, req_p, *slot, chunk);
    if (rec) {
      slot.reset();  // it holds a partial request
      keep_alive = false;
      if (rec.reading) {
        co_await local(http::status::bad_request, "bad request: " + rec.ec.message() + "\n", "DPE");
        co_return;
      }
      if (!co_await local(http::status::service_unavailable, "upstream reset before response\n", "UC")) co_return;
      continue;
    }
    http::response_parser<http::buffer_body> res_p;
    res_p.header_limit(64 * 1024);
    res_p.body_limit(boost::none);
    if (req.method() == http::verb::head) res_p.skip(true);
    auto [uec, un] = co_await http::async_read_header(*slot, *ubuf, res_p, kNoThrow);
    if (uec) {
      slot.reset();
      // A parse error (not a closed or reset connection) means the upstream spoke something else.
      bool garbage = uec.category() == error_code(http::error::bad_version).category() && uec != http::error::end_of_stream &&
                     uec != http::error::partial_message;
      if (!co_await local(garbage ? http::status::bad_gateway : http::status::service_unavailable,
                          garbage ? "upstream answered garbage\n" : "upstream reset before response\n",
                          garbage ? "UPE" : "UC")) {
        co_return;
      }
      continue;
    }
    auto& res = res_p.get();
    code = res.result_int();
    if (spec) ApplyHeaderOps(res.base(), spec->headers.response);
    if (wc->headers) ApplyHeaderOps(res.base(), wc->headers->response);
    bool upstream_keep = res.keep_alive();
    res.keep_alive(keep_alive);
    RelayError wec = co_await Relay<false>(*slot, *ubuf, res_p, down, chunk);
    if (wec || !upstream_keep) slot.reset();
    if (wec && wec.reading) flags = "UPE";  // the upstream's body broke off or was malformed
    log_line();
    if (wec || !keep_alive) co_return;
  }
}

}  // namespace tern::proxy
