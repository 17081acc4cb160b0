/*
 * amqp_baseline.c: raw librabbitmq (rabbitmq-c 0.11) throughput and latency
 * baseline for the Celeriac benchmarks.
 *
 *   gcc -O2 -o .run/amqp_baseline bench/amqp_baseline.c -lrabbitmq -lpthread
 *   .run/amqp_baseline --broker amqp://guest:guest@127.0.0.1:5682/%2F --n 100000
 *
 * stdout: exactly one line per figure, "name value unit"; everything else goes
 * to stderr. Every wait is bounded; any AMQP error exits with status 1.
 *
 * Scenarios (each on a fresh, uniquely named durable queue that is deleted
 * afterwards; messages are persistent, delivery_mode 2):
 *   c.amqp.publish_rate                          N publishes, no confirms, + passive declare
 *   c.amqp.publish_confirm_rate                  N publishes, confirm window 1000
 *   c.amqp.consume_ack_rate_prefetch100          consume + ack each of N pre-filled msgs
 *   c.amqp.consume_ack_rate_prefetch1000
 *   c.amqp.celery_shaped_consume_ack_rate_prefetch8    same with Celery v2 headers/body
 *   c.amqp.celery_shaped_consume_ack_rate_prefetch128
 *   c.amqp.rtt_p50 / c.amqp.rtt_p99              request/reply over two connections (ms)
 */
#define _GNU_SOURCE
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CHANNEL 1
#define CONFIRM_WINDOW 1000
#define PLAIN_BODY_SIZE 300
#define IO_TIMEOUT_S 15      /* per wait for a frame / delivery / RPC reply */
#define QUEUE_EXPIRES_MS 600000 /* safety net: leftover queues vanish after 10 min unused */

/* ------------------------------------------------------------------ basics */

static struct amqp_connection_info g_info;
static char g_run_id[64];
static unsigned g_queue_seq;

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("amqp_baseline: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static void note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("amqp_baseline: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void emit(const char *name, double value, const char *unit) {
  /* rates as integers; small figures (latencies in ms) with three decimals, as celeriac-bench prints them */
  if (value >= 100.0)
    printf("%s %.0f %s\n", name, value, unit);
  else
    printf("%s %.3f %s\n", name, value, unit);
  fflush(stdout);
}

static const char *method_name(amqp_method_number_t id) {
  const char *s = amqp_method_name(id);
  return s ? s : "?";
}

/* Describe a server close (channel.close / connection.close) method. */
static void die_server_close(const char *ctx, const amqp_method_t *m) {
  if (m->id == AMQP_CHANNEL_CLOSE_METHOD) {
    const amqp_channel_close_t *c = (const amqp_channel_close_t *)m->decoded;
    die("%s: channel closed by server: %u %.*s", ctx, c->reply_code,
        (int)c->reply_text.len, (const char *)c->reply_text.bytes);
  }
  if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
    const amqp_connection_close_t *c = (const amqp_connection_close_t *)m->decoded;
    die("%s: connection closed by server: %u %.*s", ctx, c->reply_code,
        (int)c->reply_text.len, (const char *)c->reply_text.bytes);
  }
  die("%s: unexpected method %s (0x%08x)", ctx, method_name(m->id), m->id);
}

static void check_reply(amqp_rpc_reply_t r, const char *ctx) {
  switch (r.reply_type) {
  case AMQP_RESPONSE_NORMAL:
    return;
  case AMQP_RESPONSE_NONE:
    die("%s: missing RPC reply", ctx);
    break;
  case AMQP_RESPONSE_LIBRARY_EXCEPTION:
    die("%s: %s", ctx, amqp_error_string2(r.library_error));
    break;
  case AMQP_RESPONSE_SERVER_EXCEPTION:
    die_server_close(ctx, &r.reply);
    break;
  }
  die("%s: unknown reply type %d", ctx, (int)r.reply_type);
}

static void check_status(int status, const char *ctx) {
  if (status != AMQP_STATUS_OK) die("%s: %s", ctx, amqp_error_string2(status));
}

static struct timeval io_timeout(void) {
  struct timeval tv = {IO_TIMEOUT_S, 0};
  return tv;
}

/* -------------------------------------------------------------- connection */

static amqp_connection_state_t open_conn(const char *label) {
  amqp_connection_state_t conn = amqp_new_connection();
  if (!conn) die("%s: amqp_new_connection failed", label);
  amqp_socket_t *sock = amqp_tcp_socket_new(conn);
  if (!sock) die("%s: amqp_tcp_socket_new failed", label);
  struct timeval tv = {10, 0};
  int st = amqp_socket_open_noblock(sock, g_info.host, g_info.port, &tv);
  if (st != AMQP_STATUS_OK)
    die("%s: cannot connect to %s:%d: %s", label, g_info.host, g_info.port,
        amqp_error_string2(st));
  struct timeval rpc = io_timeout();
  check_status(amqp_set_rpc_timeout(conn, &rpc), "amqp_set_rpc_timeout");
  check_reply(amqp_login(conn, g_info.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0,
                         AMQP_SASL_METHOD_PLAIN, g_info.user, g_info.password),
              "login");
  amqp_channel_open(conn, CHANNEL);
  check_reply(amqp_get_rpc_reply(conn), "channel.open");
  return conn;
}

static void close_conn(amqp_connection_state_t conn) {
  /* best effort: errors on close are not interesting for the figures */
  amqp_channel_close(conn, CHANNEL, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
}

static void make_queue_name(char *buf, size_t len, const char *scenario) {
  snprintf(buf, len, "celeriac-bench-c-%s-%u-%s", g_run_id, ++g_queue_seq, scenario);
}

static void declare_queue(amqp_connection_state_t conn, const char *q) {
  amqp_table_entry_t arg;
  arg.key = amqp_cstring_bytes("x-expires");
  arg.value.kind = AMQP_FIELD_KIND_I32;
  arg.value.value.i32 = QUEUE_EXPIRES_MS;
  amqp_table_t args = {1, &arg};
  amqp_queue_declare(conn, CHANNEL, amqp_cstring_bytes(q), 0, /*durable*/ 1,
                     /*exclusive*/ 0, /*auto_delete*/ 0, args);
  check_reply(amqp_get_rpc_reply(conn), "queue.declare");
}

static uint32_t passive_count(amqp_connection_state_t conn, const char *q) {
  amqp_queue_declare_ok_t *ok = amqp_queue_declare(
      conn, CHANNEL, amqp_cstring_bytes(q), /*passive*/ 1, 0, 0, 0, amqp_empty_table);
  check_reply(amqp_get_rpc_reply(conn), "queue.declare passive");
  return ok ? ok->message_count : 0;
}

static void delete_queue(amqp_connection_state_t conn, const char *q) {
  amqp_queue_delete(conn, CHANNEL, amqp_cstring_bytes(q), 0, 0);
  check_reply(amqp_get_rpc_reply(conn), "queue.delete");
}

/* ---------------------------------------------------------------- messages */

typedef struct {
  amqp_basic_properties_t props;
  amqp_bytes_t body;
  int celery;
  /* celery-shaped storage */
  amqp_table_entry_t headers[19];
  amqp_field_value_t timelimit[2];
  char id[40];
  char origin[96];
  char body_buf[128];
} message_t;

static char g_plain_body[PLAIN_BODY_SIZE];

static void init_plain_message(message_t *m) {
  memset(m, 0, sizeof *m);
  /* a JSON-ish 300-byte payload */
  static const char head[] = "{\"bench\":\"celeriac\",\"pad\":\"";
  memset(g_plain_body, 'x', sizeof g_plain_body);
  memcpy(g_plain_body, head, sizeof head - 1);
  g_plain_body[PLAIN_BODY_SIZE - 2] = '"';
  g_plain_body[PLAIN_BODY_SIZE - 1] = '}';
  m->body.bytes = g_plain_body;
  m->body.len = PLAIN_BODY_SIZE;
  m->props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  m->props.delivery_mode = 2;
  m->props.content_type = amqp_cstring_bytes("application/json");
}

static void set_entry(amqp_table_entry_t *e, const char *key, uint8_t kind) {
  e->key = amqp_cstring_bytes(key);
  e->value.kind = kind;
}

static void set_str(amqp_table_entry_t *e, const char *key, const char *val) {
  set_entry(e, key, AMQP_FIELD_KIND_UTF8);
  e->value.value.bytes = amqp_cstring_bytes(val);
}

/* message_t must not move after this (headers point into it). */
static void init_celery_message(message_t *m, const char *reply_to) {
  memset(m, 0, sizeof *m);
  m->celery = 1;
  strcpy(m->id, "00000000-0000-4000-8000-000000000000");
  char host[64] = "localhost";
  gethostname(host, sizeof host - 1);
  snprintf(m->origin, sizeof m->origin, "gen%d@%s", (int)getpid(), host);
  snprintf(m->body_buf, sizeof m->body_buf, "%s",
           "[[], {}, {\"callbacks\": null, \"errbacks\": null, \"chain\": null, \"chord\": null}]");

  amqp_table_entry_t *h = m->headers;
  int i = 0;
  set_str(&h[i++], "lang", "py");
  set_str(&h[i++], "task", "demo.noop");
  set_str(&h[i++], "id", m->id);
  set_entry(&h[i++], "shadow", AMQP_FIELD_KIND_VOID);
  set_entry(&h[i++], "eta", AMQP_FIELD_KIND_VOID);
  set_entry(&h[i++], "expires", AMQP_FIELD_KIND_VOID);
  set_entry(&h[i++], "group", AMQP_FIELD_KIND_VOID);
  set_entry(&h[i++], "group_index", AMQP_FIELD_KIND_VOID);
  set_entry(&h[i], "retries", AMQP_FIELD_KIND_I32);
  h[i++].value.value.i32 = 0;
  m->timelimit[0].kind = AMQP_FIELD_KIND_VOID;
  m->timelimit[1].kind = AMQP_FIELD_KIND_VOID;
  set_entry(&h[i], "timelimit", AMQP_FIELD_KIND_ARRAY);
  h[i].value.value.array.num_entries = 2;
  h[i++].value.value.array.entries = m->timelimit;
  set_str(&h[i++], "root_id", m->id);
  set_entry(&h[i++], "parent_id", AMQP_FIELD_KIND_VOID);
  set_str(&h[i++], "argsrepr", "()");
  set_str(&h[i++], "kwargsrepr", "{}");
  set_str(&h[i++], "origin", m->origin);
  set_entry(&h[i], "ignore_result", AMQP_FIELD_KIND_BOOLEAN);
  h[i++].value.value.boolean = 0;
  set_entry(&h[i], "replaced_task_nesting", AMQP_FIELD_KIND_I32);
  h[i++].value.value.i32 = 0;
  set_entry(&h[i++], "stamped_headers", AMQP_FIELD_KIND_VOID);
  set_entry(&h[i], "stamps", AMQP_FIELD_KIND_TABLE);
  h[i].value.value.table.num_entries = 0;
  h[i++].value.value.table.entries = NULL;
  if (i != 19) die("internal: %d celery headers", i);

  m->props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG |
                    AMQP_BASIC_CONTENT_ENCODING_FLAG | AMQP_BASIC_HEADERS_FLAG |
                    AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_REPLY_TO_FLAG;
  m->props.delivery_mode = 2;
  m->props.content_type = amqp_cstring_bytes("application/json");
  m->props.content_encoding = amqp_cstring_bytes("utf-8");
  m->props.headers.num_entries = 19;
  m->props.headers.entries = m->headers;
  m->props.correlation_id = amqp_cstring_bytes(m->id);
  m->props.reply_to = amqp_cstring_bytes(reply_to);
  m->body = amqp_cstring_bytes(m->body_buf);
}

/* Give each Celery-shaped message its own UUID-shaped id (in place, same length). */
static void next_celery_id(message_t *m, uint64_t seq) {
  static const char hex[] = "0123456789abcdef";
  /* last 12 hex digits carry the sequence number, the rest stays fixed */
  for (int k = 0; k < 12; k++) m->id[35 - k] = hex[(seq >> (4 * k)) & 0xf];
}

static void publish(amqp_connection_state_t conn, const char *routing_key, message_t *m,
                    uint64_t seq, const char *ctx) {
  if (m->celery) next_celery_id(m, seq);
  int st = amqp_basic_publish(conn, CHANNEL, amqp_empty_bytes, amqp_cstring_bytes(routing_key),
                              0, 0, &m->props, m->body);
  if (st != AMQP_STATUS_OK) die("%s: basic.publish #%llu: %s", ctx, (unsigned long long)seq,
                                amqp_error_string2(st));
}

/* --------------------------------------------------------------- confirms */

typedef struct {
  unsigned char *acked; /* index = delivery tag (1..n) */
  uint64_t n;
  uint64_t low;       /* lowest tag not yet confirmed */
  uint64_t confirmed; /* number of confirmed tags */
} confirm_state_t;

static void confirm_init(confirm_state_t *c, uint64_t n) {
  c->acked = calloc(n + 2, 1);
  if (!c->acked) die("out of memory");
  c->n = n;
  c->low = 1;
  c->confirmed = 0;
}

static void confirm_mark(confirm_state_t *c, uint64_t tag, int multiple) {
  if (tag > c->n) die("confirm for unknown delivery tag %llu", (unsigned long long)tag);
  if (multiple) {
    for (uint64_t t = c->low; t <= tag; t++)
      if (!c->acked[t]) { c->acked[t] = 1; c->confirmed++; }
  } else if (!c->acked[tag]) {
    c->acked[tag] = 1;
    c->confirmed++;
  }
  while (c->low <= c->n && c->acked[c->low]) c->low++;
}

/* Read one frame (blocking up to timeout) and apply it. Returns 0 on timeout
 * when poll_only is set, 1 when a frame was handled. */
static int confirm_read_frame(amqp_connection_state_t conn, confirm_state_t *c, int poll_only,
                              const char *ctx) {
  amqp_frame_t frame;
  struct timeval tv = io_timeout();
  struct timeval zero = {0, 0};
  int st = amqp_simple_wait_frame_noblock(conn, &frame, poll_only ? &zero : &tv);
  if (st == AMQP_STATUS_TIMEOUT) {
    if (poll_only) return 0;
    die("%s: no publisher confirm within %d s (%llu of %llu confirmed)", ctx, IO_TIMEOUT_S,
        (unsigned long long)c->confirmed, (unsigned long long)c->n);
  }
  if (st != AMQP_STATUS_OK) die("%s: waiting for confirms: %s", ctx, amqp_error_string2(st));
  if (frame.frame_type != AMQP_FRAME_METHOD) return 1; /* heartbeat etc. */
  switch (frame.payload.method.id) {
  case AMQP_BASIC_ACK_METHOD: {
    const amqp_basic_ack_t *a = (const amqp_basic_ack_t *)frame.payload.method.decoded;
    confirm_mark(c, a->delivery_tag, a->multiple);
    return 1;
  }
  case AMQP_BASIC_NACK_METHOD: {
    const amqp_basic_nack_t *a = (const amqp_basic_nack_t *)frame.payload.method.decoded;
    die("%s: broker nacked publish (delivery tag %llu)", ctx, (unsigned long long)a->delivery_tag);
    break;
  }
  case AMQP_BASIC_RETURN_METHOD:
    die("%s: message returned by broker", ctx);
    break;
  default:
    die_server_close(ctx, &frame.payload.method);
  }
  return 1;
}

/* Publish n messages with confirms (window CONFIRM_WINDOW) on a connection
 * that is in confirm mode; returns when all are confirmed. */
static void publish_confirmed(amqp_connection_state_t conn, const char *q, message_t *m,
                              uint64_t n, const char *ctx) {
  confirm_state_t c;
  confirm_init(&c, n);
  for (uint64_t i = 1; i <= n; i++) {
    while (i - 1 - c.confirmed >= CONFIRM_WINDOW) {
      confirm_read_frame(conn, &c, 0, ctx);
      while (amqp_frames_enqueued(conn) || amqp_data_in_buffer(conn))
        if (!confirm_read_frame(conn, &c, 1, ctx)) break;
    }
    publish(conn, q, m, i, ctx);
  }
  /* bounded: each wait is at most IO_TIMEOUT_S and must make progress */
  while (c.confirmed < n) confirm_read_frame(conn, &c, 0, ctx);
  free(c.acked);
}

static void confirm_select(amqp_connection_state_t conn) {
  amqp_confirm_select(conn, CHANNEL);
  check_reply(amqp_get_rpc_reply(conn), "confirm.select");
}

/* -------------------------------------------------------------- scenarios */

static double bench_publish(amqp_connection_state_t admin, uint64_t n) {
  char q[200];
  make_queue_name(q, sizeof q, "publish");
  declare_queue(admin, q);
  amqp_connection_state_t conn = open_conn("publisher");
  message_t m;
  init_plain_message(&m);
  double t0 = now_s();
  for (uint64_t i = 1; i <= n; i++) publish(conn, q, &m, i, "publish");
  uint32_t count = passive_count(conn, q);
  double dt = now_s() - t0;
  if (count != n) {
    /* Diagnostic only (not part of the figure): how long until the queue holds them all. */
    double deadline = now_s() + IO_TIMEOUT_S;
    uint32_t c = count;
    while (c < n && now_s() < deadline) {
      usleep(1000);
      c = passive_count(conn, q);
    }
    double dt_all = now_s() - t0;
    note("publish: passive declare saw %u of %llu messages right after publishing; "
         "%u queued after %.3f s (%.0f msg/s until all queued)",
         count, (unsigned long long)n, c, dt_all, (double)c / dt_all);
    if (c != n) die("publish: queue holds %u messages, expected %llu", c, (unsigned long long)n);
  }
  close_conn(conn);
  delete_queue(admin, q);
  return (double)n / dt;
}

static double bench_publish_confirm(amqp_connection_state_t admin, uint64_t n) {
  char q[200];
  make_queue_name(q, sizeof q, "confirm");
  declare_queue(admin, q);
  amqp_connection_state_t conn = open_conn("confirm-publisher");
  confirm_select(conn);
  message_t m;
  init_plain_message(&m);
  double t0 = now_s();
  publish_confirmed(conn, q, &m, n, "publish_confirm");
  double dt = now_s() - t0;
  close_conn(conn);
  uint32_t count = passive_count(admin, q);
  if (count != n)
    die("publish_confirm: queue holds %u messages, expected %llu", count, (unsigned long long)n);
  delete_queue(admin, q);
  return (double)n / dt;
}

/* Pre-fill q with n messages (confirmed, so they are all in the queue). */
static void prefill(amqp_connection_state_t admin, const char *q, message_t *m, uint64_t n) {
  amqp_connection_state_t conn = open_conn("prefill");
  confirm_select(conn);
  publish_confirmed(conn, q, m, n, "prefill");
  close_conn(conn);
  uint32_t count = passive_count(admin, q);
  if (count != n)
    die("prefill: queue holds %u messages, expected %llu", count, (unsigned long long)n);
}

/* Handle a non-delivery frame that amqp_consume_message left for us. */
static void consume_unexpected(amqp_connection_state_t conn, const char *ctx) {
  amqp_frame_t frame;
  struct timeval tv = io_timeout();
  int st = amqp_simple_wait_frame_noblock(conn, &frame, &tv);
  if (st != AMQP_STATUS_OK) die("%s: reading frame: %s", ctx, amqp_error_string2(st));
  if (frame.frame_type != AMQP_FRAME_METHOD) return;
  if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) return; /* stray confirm */
  die_server_close(ctx, &frame.payload.method);
}

/* Receive one delivery within IO_TIMEOUT_S. Caller must amqp_destroy_envelope. */
static void consume_one(amqp_connection_state_t conn, amqp_envelope_t *env, const char *ctx,
                        uint64_t got, uint64_t want) {
  double deadline = now_s() + IO_TIMEOUT_S;
  for (;;) {
    amqp_maybe_release_buffers(conn);
    struct timeval tv = io_timeout();
    amqp_rpc_reply_t r = amqp_consume_message(conn, env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
      if (r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        consume_unexpected(conn, ctx);
        if (now_s() > deadline) die("%s: no delivery within %d s", ctx, IO_TIMEOUT_S);
        continue;
      }
      if (r.library_error == AMQP_STATUS_TIMEOUT)
        die("%s: no delivery within %d s (got %llu of %llu)", ctx, IO_TIMEOUT_S,
            (unsigned long long)got, (unsigned long long)want);
    }
    check_reply(r, ctx);
  }
}

static double bench_consume(amqp_connection_state_t admin, uint64_t n, uint16_t prefetch,
                            int celery) {
  char q[200], tag[64];
  snprintf(tag, sizeof tag, "%sprefetch%u", celery ? "celery-" : "", prefetch);
  make_queue_name(q, sizeof q, tag);
  declare_queue(admin, q);
  message_t *m = malloc(sizeof *m);
  if (!m) die("out of memory");
  if (celery)
    init_celery_message(m, "00000000-0000-3000-8000-00000000beef");
  else
    init_plain_message(m);
  prefill(admin, q, m, n);
  free(m);

  amqp_connection_state_t conn = open_conn("consumer");
  double t0 = now_s();
  amqp_basic_qos(conn, CHANNEL, 0, prefetch, 0);
  check_reply(amqp_get_rpc_reply(conn), "basic.qos");
  amqp_basic_consume(conn, CHANNEL, amqp_cstring_bytes(q), amqp_empty_bytes, 0, /*no_ack*/ 0,
                     0, amqp_empty_table);
  check_reply(amqp_get_rpc_reply(conn), "basic.consume");
  for (uint64_t i = 0; i < n; i++) {
    amqp_envelope_t env;
    consume_one(conn, &env, "consume", i, n);
    if (celery && !(env.message.properties._flags & AMQP_BASIC_HEADERS_FLAG))
      die("consume: celery-shaped message without headers");
    int st = amqp_basic_ack(conn, CHANNEL, env.delivery_tag, 0);
    amqp_destroy_envelope(&env);
    if (st != AMQP_STATUS_OK) die("consume: basic.ack: %s", amqp_error_string2(st));
  }
  double dt = now_s() - t0;
  close_conn(conn);
  uint32_t left = passive_count(admin, q);
  if (left != 0) die("consume: %u messages left in queue after acking all", left);
  delete_queue(admin, q);
  return (double)n / dt;
}

/* ------------------------------------------------------------------- rtt */

typedef struct {
  char req_q[200];
  char reply_q[200];
  uint64_t rounds; /* total requests the responder must answer */
  atomic_int ready;
  atomic_int stop;
  int failed;
  char error[512];
} rtt_shared_t;

static void *responder_main(void *arg) {
  rtt_shared_t *s = (rtt_shared_t *)arg;
  /* Errors here exit the whole process via die(): that is what we want. */
  amqp_connection_state_t conn = open_conn("responder");
  amqp_basic_qos(conn, CHANNEL, 0, 1, 0);
  check_reply(amqp_get_rpc_reply(conn), "responder basic.qos");
  amqp_basic_consume(conn, CHANNEL, amqp_cstring_bytes(s->req_q), amqp_empty_bytes, 0, 0, 0,
                     amqp_empty_table);
  check_reply(amqp_get_rpc_reply(conn), "responder basic.consume");
  atomic_store(&s->ready, 1);

  amqp_basic_properties_t rp;
  memset(&rp, 0, sizeof rp);
  rp._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG |
              AMQP_BASIC_CORRELATION_ID_FLAG;
  rp.delivery_mode = 1;
  rp.content_type = amqp_cstring_bytes("application/json");
  amqp_bytes_t reply_body = amqp_cstring_bytes("{\"status\": \"SUCCESS\", \"result\": 4}");

  uint64_t answered = 0;
  int idle_rounds = 0;
  while (answered < s->rounds && !atomic_load(&s->stop)) {
    amqp_maybe_release_buffers(conn);
    amqp_envelope_t env;
    struct timeval tv = {0, 200000};
    amqp_rpc_reply_t r = amqp_consume_message(conn, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_TIMEOUT) {
      if (++idle_rounds > IO_TIMEOUT_S * 5) die("responder: no request within %d s", IO_TIMEOUT_S);
      continue;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      consume_unexpected(conn, "responder");
      continue;
    }
    check_reply(r, "responder consume");
    idle_rounds = 0;
    if (!(env.message.properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG))
      die("responder: request without correlation_id");
    rp.correlation_id = env.message.properties.correlation_id;
    int st = amqp_basic_publish(conn, CHANNEL, amqp_empty_bytes, amqp_cstring_bytes(s->reply_q),
                                0, 0, &rp, reply_body);
    if (st != AMQP_STATUS_OK) die("responder: basic.publish: %s", amqp_error_string2(st));
    st = amqp_basic_ack(conn, CHANNEL, env.delivery_tag, 0);
    amqp_destroy_envelope(&env);
    if (st != AMQP_STATUS_OK) die("responder: basic.ack: %s", amqp_error_string2(st));
    answered++;
  }
  close_conn(conn);
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double percentile(const double *sorted, uint64_t n, double p) {
  /* nearest-rank */
  uint64_t rank = (uint64_t)(p / 100.0 * (double)n + 0.999999999);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1];
}

static void bench_rtt(amqp_connection_state_t admin, uint64_t n, double *p50, double *p99) {
  const uint64_t warmup = 20;
  uint64_t rounds = n / 50;
  if (rounds > 2000) rounds = 2000;
  if (rounds < 200) rounds = 200;

  rtt_shared_t *s = calloc(1, sizeof *s);
  if (!s) die("out of memory");
  make_queue_name(s->req_q, sizeof s->req_q, "rtt-request");
  make_queue_name(s->reply_q, sizeof s->reply_q, "rtt-reply");
  declare_queue(admin, s->req_q);
  declare_queue(admin, s->reply_q);
  s->rounds = rounds + warmup;

  pthread_t th;
  if (pthread_create(&th, NULL, responder_main, s) != 0) die("pthread_create: %s", strerror(errno));

  amqp_connection_state_t conn = open_conn("requester");
  amqp_basic_consume(conn, CHANNEL, amqp_cstring_bytes(s->reply_q), amqp_empty_bytes, 0,
                     /*no_ack*/ 1, 0, amqp_empty_table);
  check_reply(amqp_get_rpc_reply(conn), "requester basic.consume");

  double ready_deadline = now_s() + IO_TIMEOUT_S;
  while (!atomic_load(&s->ready)) {
    if (now_s() > ready_deadline) die("rtt: responder not ready within %d s", IO_TIMEOUT_S);
    usleep(1000);
  }

  message_t m;
  init_plain_message(&m);
  m.props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_REPLY_TO_FLAG;
  m.props.reply_to = amqp_cstring_bytes(s->reply_q);
  char corr[64];

  double *samples = malloc(sizeof(double) * rounds);
  if (!samples) die("out of memory");
  for (uint64_t i = 0; i < rounds + warmup; i++) {
    int len = snprintf(corr, sizeof corr, "rtt-%s-%llu", g_run_id, (unsigned long long)i);
    m.props.correlation_id.bytes = corr;
    m.props.correlation_id.len = (size_t)len;
    double t0 = now_s();
    publish(conn, s->req_q, &m, i, "rtt");
    amqp_envelope_t env;
    consume_one(conn, &env, "rtt reply", i, rounds + warmup);
    double dt = now_s() - t0;
    amqp_bytes_t got = env.message.properties.correlation_id;
    int match = (env.message.properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG) &&
                got.len == (size_t)len && memcmp(got.bytes, corr, (size_t)len) == 0;
    amqp_destroy_envelope(&env);
    if (!match) die("rtt: reply with unexpected correlation_id (round %llu)", (unsigned long long)i);
    if (i >= warmup) samples[i - warmup] = dt * 1000.0;
  }
  atomic_store(&s->stop, 1);
  pthread_join(th, NULL);
  close_conn(conn);
  delete_queue(admin, s->req_q);
  delete_queue(admin, s->reply_q);

  qsort(samples, rounds, sizeof(double), cmp_double);
  *p50 = percentile(samples, rounds, 50);
  *p99 = percentile(samples, rounds, 99);
  note("rtt: %llu round trips, min %.3f ms, p50 %.3f ms, p99 %.3f ms, max %.3f ms",
       (unsigned long long)rounds, samples[0], *p50, *p99, samples[rounds - 1]);
  free(samples);
  free(s);
}

/* ------------------------------------------------------------------- main */

static void usage(void) {
  fprintf(stderr, "usage: amqp_baseline --broker amqp://user:pass@host:port/vhost --n N\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *url = NULL;
  long long n = -1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--broker") && i + 1 < argc)
      url = argv[++i];
    else if (!strncmp(argv[i], "--broker=", 9))
      url = argv[i] + 9;
    else if (!strcmp(argv[i], "--n") && i + 1 < argc)
      n = atoll(argv[++i]);
    else if (!strncmp(argv[i], "--n=", 4))
      n = atoll(argv[i] + 4);
    else
      usage();
  }
  if (!url || n < 1 || n > 100000000) usage();

  char *url_copy = strdup(url); /* amqp_parse_url modifies its input and decodes %XX */
  if (!url_copy) die("out of memory");
  amqp_default_connection_info(&g_info);
  if (amqp_parse_url(url_copy, &g_info) != AMQP_STATUS_OK) die("cannot parse broker URL");
  if (g_info.ssl) die("amqps:// URLs are not supported by this baseline");
  snprintf(g_run_id, sizeof g_run_id, "%d-%ld", (int)getpid(), (long)time(NULL));
  note("broker %s:%d vhost '%s' user '%s', n=%lld", g_info.host, g_info.port, g_info.vhost,
       g_info.user, n);

  amqp_connection_state_t admin = open_conn("admin");
  uint64_t un = (uint64_t)n;

  emit("c.amqp.publish_rate", bench_publish(admin, un), "msg/s");
  emit("c.amqp.publish_confirm_rate", bench_publish_confirm(admin, un), "msg/s");
  emit("c.amqp.consume_ack_rate_prefetch100", bench_consume(admin, un, 100, 0), "msg/s");
  emit("c.amqp.consume_ack_rate_prefetch1000", bench_consume(admin, un, 1000, 0), "msg/s");
  emit("c.amqp.celery_shaped_consume_ack_rate_prefetch8", bench_consume(admin, un, 8, 1), "msg/s");
  emit("c.amqp.celery_shaped_consume_ack_rate_prefetch128", bench_consume(admin, un, 128, 1),
       "msg/s");
  double p50, p99;
  bench_rtt(admin, un, &p50, &p99);
  emit("c.amqp.rtt_p50", p50, "ms");
  emit("c.amqp.rtt_p99", p99, "ms");

  close_conn(admin);
  free(url_copy);
  return 0;
}
