// Batched UDP for the RADIUS request path: recvmmsg/sendmmsg on a non-blocking socket watched by
// libuv, so that one crossing between C and JS carries up to BATCH datagrams each way instead of
// one (node:dgram pays a JS <-> C++ round trip, a SendWrap and a DNS-lookup tick per datagram).
//
// JS owns four buffers and hands them over at open(): rx and tx (BATCH slots of SLOT octets) and
// rx_meta and tx_meta (BATCH records of META octets):
//   0  u16 length                                                2  u16 port
//   4  u8  family (4 or 6)                                       5  u8  length of the text address
//   8  u32 IPv6 scope id                                        12  16 octets of address
//   28 the address as text (received datagrams only, up to 46 octets)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define BATCH 64
#define SLOT 4096
#define META 80
#define ROUNDS_PER_WAKEUP 8

typedef struct {
  int fd;      /* -1 once close() was called */
  int open_fd; /* closed after libuv let go of it */
  int family;
  uv_poll_t poll;
  napi_env env;
  napi_ref on_batch;
  napi_ref buffers;
  napi_async_context async_context;
  uint8_t *rx, *rx_meta, *tx, *tx_meta;
  struct mmsghdr msgs[BATCH], tx_msgs[BATCH];
  struct iovec iov[BATCH], tx_iov[BATCH];
  struct sockaddr_in6 addrs[BATCH], tx_addrs[BATCH];
} batch_socket;

#define CHECK(call)                          \
  do {                                       \
    if ((call) != napi_ok) return NULL;      \
  } while (0)

static napi_value throw_errno(napi_env env, const char *syscall, int err) {
  char message[160];
  const char *code = uv_err_name(uv_translate_sys_error(err));
  snprintf(message, sizeof message, "%s %s: %s", syscall, code, strerror(err));
  napi_throw_error(env, code, message);
  return NULL;
}

static uint8_t *buffer_data(napi_env env, napi_value value, size_t need) {
  void *data;
  size_t length;
  if (napi_get_buffer_info(env, value, &data, &length) != napi_ok || length < need) return NULL;
  return data;
}

static void write_meta(uint8_t *meta, const struct sockaddr_in6 *from, unsigned length) {
  uint16_t len16 = (uint16_t)length;
  memcpy(meta, &len16, 2);
  if (from->sin6_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)from;
    uint16_t port = ntohs(v4->sin_port);
    memcpy(meta + 2, &port, 2);
    meta[4] = 4;
    memset(meta + 8, 0, 4 + 16);
    memcpy(meta + 12, &v4->sin_addr, 4);
    inet_ntop(AF_INET, &v4->sin_addr, (char *)meta + 28, INET6_ADDRSTRLEN);
  } else {
    uint16_t port = ntohs(from->sin6_port);
    memcpy(meta + 2, &port, 2);
    meta[4] = 6;
    memcpy(meta + 8, &from->sin6_scope_id, 4);
    memcpy(meta + 12, &from->sin6_addr, 16);
    inet_ntop(AF_INET6, &from->sin6_addr, (char *)meta + 28, INET6_ADDRSTRLEN);
  }
  meta[5] = (uint8_t)strlen((const char *)meta + 28);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  batch_socket *s = handle->data;
  (void)events;
  if (status < 0) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(s->env, &scope) != napi_ok) return;
  napi_value callback, receiver, argv[1];
  napi_get_reference_value(s->env, s->on_batch, &callback);
  napi_get_global(s->env, &receiver);
  for (int round = 0; round < ROUNDS_PER_WAKEUP; round++) {
    for (int i = 0; i < BATCH; i++) {
      s->iov[i].iov_base = s->rx + (size_t)i * SLOT;
      s->iov[i].iov_len = SLOT;
      s->msgs[i].msg_hdr.msg_name = &s->addrs[i];
      s->msgs[i].msg_hdr.msg_namelen = sizeof s->addrs[i];
      s->msgs[i].msg_hdr.msg_flags = 0;
    }
    int n = recvmmsg(s->fd, s->msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) break;
    for (int i = 0; i < n; i++) {
      // A longer datagram is cut at SLOT: RFC 2865 §3 makes octets past Length padding, and Length <= 4096.
      write_meta(s->rx_meta + (size_t)i * META, &s->addrs[i], s->msgs[i].msg_len);
    }
    napi_create_uint32(s->env, (uint32_t)n, &argv[0]);
    napi_value result;
    // make_callback runs process.nextTick callbacks and promise jobs afterwards, as node:dgram does.
    if (napi_make_callback(s->env, s->async_context, receiver, callback, 1, argv, &result) != napi_ok) {
      napi_value exception;
      napi_get_and_clear_last_exception(s->env, &exception);
      napi_fatal_exception(s->env, exception);
      break;
    }
    if (n < BATCH || s->fd < 0) break;
  }
  napi_close_handle_scope(s->env, scope);
}

static void free_socket(uv_handle_t *handle) {
  batch_socket *s = handle->data;
  close(s->open_fd);
  napi_delete_reference(s->env, s->on_batch);
  napi_delete_reference(s->env, s->buffers);
  napi_async_destroy(s->env, s->async_context);
  free(s);
}

// open(ipv6: boolean, v6only: boolean, host: string, port: number, receiveBufferBytes: number,
//      rx, rxMeta, tx, txMeta: Buffer, onBatch: (count) => void) -> { handle, port }
static napi_value open_socket(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 10) {
    napi_throw_type_error(env, NULL, "open: 10 arguments");
    return NULL;
  }
  bool ipv6, v6only;
  char host[INET6_ADDRSTRLEN + 1];
  size_t host_length;
  uint32_t port, receive_buffer;
  CHECK(napi_get_value_bool(env, argv[0], &ipv6));
  CHECK(napi_get_value_bool(env, argv[1], &v6only));
  CHECK(napi_get_value_string_latin1(env, argv[2], host, sizeof host, &host_length));
  CHECK(napi_get_value_uint32(env, argv[3], &port));
  CHECK(napi_get_value_uint32(env, argv[4], &receive_buffer));
  uint8_t *rx = buffer_data(env, argv[5], (size_t)BATCH * SLOT), *rx_meta = buffer_data(env, argv[6], (size_t)BATCH * META);
  uint8_t *tx = buffer_data(env, argv[7], (size_t)BATCH * SLOT), *tx_meta = buffer_data(env, argv[8], (size_t)BATCH * META);
  if (!rx || !rx_meta || !tx || !tx_meta) {
    napi_throw_type_error(env, NULL, "open: buffers too small");
    return NULL;
  }

  struct sockaddr_in6 address;
  socklen_t address_length;
  memset(&address, 0, sizeof address);
  if (ipv6) {
    address.sin6_family = AF_INET6;
    address.sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &address.sin6_addr) != 1) return throw_errno(env, "inet_pton", EINVAL);
    address_length = sizeof(struct sockaddr_in6);
  } else {
    struct sockaddr_in *v4 = (struct sockaddr_in *)&address;
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &v4->sin_addr) != 1) return throw_errno(env, "inet_pton", EINVAL);
    address_length = sizeof(struct sockaddr_in);
  }
  int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int v6 = v6only ? 1 : 0, size = (int)receive_buffer;
  if (ipv6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof v6);
  // Linux caps this at net.core.rmem_max; a smaller buffer is not an error.
  if (size > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  if (bind(fd, (struct sockaddr *)&address, address_length) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "bind", err);
  }
  struct sockaddr_in6 bound;
  socklen_t bound_length = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &bound_length);
  uint16_t bound_port = ntohs(ipv6 ? bound.sin6_port : ((struct sockaddr_in *)&bound)->sin_port);

  batch_socket *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    napi_throw_error(env, "ENOMEM", "open: out of memory");
    return NULL;
  }
  s->fd = fd;
  s->open_fd = fd;
  s->family = ipv6 ? AF_INET6 : AF_INET;
  s->env = env;
  s->rx = rx, s->rx_meta = rx_meta, s->tx = tx, s->tx_meta = tx_meta;
  for (int i = 0; i < BATCH; i++) {
    s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
    s->msgs[i].msg_hdr.msg_iovlen = 1;
    s->tx_msgs[i].msg_hdr.msg_iov = &s->tx_iov[i];
    s->tx_msgs[i].msg_hdr.msg_iovlen = 1;
    s->tx_msgs[i].msg_hdr.msg_name = &s->tx_addrs[i];
  }
  napi_value buffers, name, result, handle, port_value;
  CHECK(napi_create_array_with_length(env, 4, &buffers));
  for (uint32_t i = 0; i < 4; i++) CHECK(napi_set_element(env, buffers, i, argv[5 + i]));
  CHECK(napi_create_reference(env, buffers, 1, &s->buffers));
  CHECK(napi_create_reference(env, argv[9], 1, &s->on_batch));
  CHECK(napi_create_string_utf8(env, "radius-udp", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &s->async_context));
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  uv_poll_init(loop, &s->poll, fd);
  s->poll.data = s;
  uv_poll_start(&s->poll, UV_READABLE, on_readable);

  CHECK(napi_create_external(env, s, NULL, NULL, &handle));
  CHECK(napi_create_uint32(env, bound_port, &port_value));
  CHECK(napi_create_object(env, &result));
  CHECK(napi_set_named_property(env, result, "handle", handle));
  CHECK(napi_set_named_property(env, result, "port", port_value));
  return result;
}

static batch_socket *unwrap(napi_env env, napi_value value) {
  void *s = NULL;
  if (napi_get_value_external(env, value, &s) != napi_ok || !s || ((batch_socket *)s)->fd < 0) {
    napi_throw_error(env, "ERR_SOCKET_CLOSED", "socket is closed");
    return NULL;
  }
  return s;
}

// flush(handle, count) -> number of datagrams the kernel refused (socket buffer full, bad address)
static napi_value flush(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  uint32_t count;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  batch_socket *s = unwrap(env, argv[0]);
  if (!s) return NULL;
  CHECK(napi_get_value_uint32(env, argv[1], &count));
  if (count > BATCH) count = BATCH;
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t *meta = s->tx_meta + (size_t)i * META;
    uint16_t length, port;
    memcpy(&length, meta, 2);
    memcpy(&port, meta + 2, 2);
    struct sockaddr_in6 *to = &s->tx_addrs[i];
    struct msghdr *header = &s->tx_msgs[i].msg_hdr;
    memset(to, 0, sizeof *to);
    if (meta[4] == 4 && s->family == AF_INET) {
      struct sockaddr_in *v4 = (struct sockaddr_in *)to;
      v4->sin_family = AF_INET;
      v4->sin_port = htons(port);
      memcpy(&v4->sin_addr, meta + 12, 4);
      header->msg_namelen = sizeof(struct sockaddr_in);
    } else {
      to->sin6_family = AF_INET6;
      to->sin6_port = htons(port);
      memcpy(&to->sin6_scope_id, meta + 8, 4);
      memcpy(&to->sin6_addr, meta + 12, 16);
      header->msg_namelen = sizeof(struct sockaddr_in6);
    }
    s->tx_iov[i].iov_base = s->tx + (size_t)i * SLOT;
    s->tx_iov[i].iov_len = length;
  }
  uint32_t refused = 0, done = 0;
  while (done < count) {
    int n = sendmmsg(s->fd, s->tx_msgs + done, count - done, MSG_DONTWAIT);
    if (n > 0) {
      done += (uint32_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      // This datagram cannot go (full buffer, unreachable address): skip it, send the rest.
      done++;
      refused++;
    }
  }
  CHECK(napi_create_uint32(env, refused, &result));
  return result;
}

static napi_value close_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  batch_socket *s = unwrap(env, argv[0]);
  if (!s) return NULL;
  uv_poll_stop(&s->poll);
  s->fd = -1;
  uv_close((uv_handle_t *)&s->poll, free_socket);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"open", NULL, open_socket, NULL, NULL, NULL, napi_default, NULL},
      {"flush", NULL, flush, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_socket, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value constants;
  napi_value batch, slot, meta;
  napi_create_object(env, &constants);
  napi_create_uint32(env, BATCH, &batch);
  napi_create_uint32(env, SLOT, &slot);
  napi_create_uint32(env, META, &meta);
  napi_set_named_property(env, exports, "BATCH", batch);
  napi_set_named_property(env, exports, "SLOT", slot);
  napi_set_named_property(env, exports, "META", meta);
  napi_define_properties(env, exports, 3, properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
