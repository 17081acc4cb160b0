// Sources/CRabbitMQ/shim.h: the only C that Celeriac sees. AMQPTransport is its only importer.
#ifndef CELERIAC_CRABBITMQ_SHIM_H
#define CELERIAC_CRABBITMQ_SHIM_H

#include <sys/time.h>
#include <poll.h>

// rabbitmq-c 0.12+ moved its headers under rabbitmq-c/; Debian 12 ships 0.11 with flat headers.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/framing.h>
#include <rabbitmq-c/tcp_socket.h>
#include <rabbitmq-c/ssl_socket.h>
#else
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#endif

// amqp_login is C-variadic, which Swift cannot call ("Variadic function is unavailable").
// This wrapper fixes the SASL method to PLAIN and passes the two credentials explicitly.
static inline amqp_rpc_reply_t crmq_login_plain(amqp_connection_state_t state, const char *vhost,
                                                int channel_max, int frame_max, int heartbeat,
                                                amqp_table_t *client_properties,
                                                const char *user, const char *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat,
                                      client_properties, AMQP_SASL_METHOD_PLAIN, user, password);
}

// amqp_login_with_properties is variadic too; EXTERNAL (client-certificate) login takes one identity.
static inline amqp_rpc_reply_t crmq_login_external(amqp_connection_state_t state, const char *vhost,
                                                   int channel_max, int frame_max, int heartbeat,
                                                   amqp_table_t *client_properties,
                                                   const char *identity) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat,
                                      client_properties, AMQP_SASL_METHOD_EXTERNAL, identity);
}

#endif
