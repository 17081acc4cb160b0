import CRabbitMQ

extension AMQPError {
    /// Turns a librabbitmq RPC reply into an error, or nil when it is a normal reply. The one place where C
    /// results become Swift errors.
    init?(reply r: amqp_rpc_reply_t, operation: String) {
        switch r.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return nil
        case AMQP_RESPONSE_NONE:
            self.init(.protocolError, operation: operation, reason: "missing RPC reply type")
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            self.init(status: r.library_error, operation: operation)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if r.reply.id == AMQP_CONNECTION_CLOSE_METHOD, let d = r.reply.decoded {
                let m = d.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                self.init(connectionClose: m.reply_code, text: CDecode.string(m.reply_text), operation: operation)
            } else if r.reply.id == AMQP_CHANNEL_CLOSE_METHOD, let d = r.reply.decoded {
                let m = d.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                self.init(channelClose: m.reply_code, text: CDecode.string(m.reply_text), operation: operation)
            } else {
                self.init(.protocolError, operation: operation, reason: "unexpected server method \(r.reply.id)")
            }
        default:
            self.init(.protocolError, operation: operation, reason: "unknown reply type")
        }
    }

    /// Turns a negative librabbitmq status code into an error.
    init(status: Int32, operation: String) {
        let text = amqp_error_string2(status).map { String(cString: $0) } ?? "status \(status)"
        switch status {
        case AMQP_STATUS_SOCKET_ERROR.rawValue where operation.hasPrefix("connect"):
            self.init(
                .connectionRefused, operation: operation, reason: text,
                hint: "Is RabbitMQ running and listening there? Check the broker URL (--broker / CELERIAC_BROKER_URL)")
        case AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED.rawValue:
            self.init(.hostNotFound, operation: operation, reason: text, hint: "Check the host name in the broker URL")
        case AMQP_STATUS_TIMEOUT.rawValue:
            self.init(
                operation.hasPrefix("connect") ? .connectTimeout : .timeout, operation: operation, reason: text,
                hint: "The broker did not answer in time; check that it is reachable and not overloaded")
        case AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue:
            self.init(
                .heartbeatTimeout, operation: operation, reason: text,
                hint: "No frame from the broker for two heartbeat intervals: it is frozen or unreachable")
        case AMQP_STATUS_SSL_ERROR.rawValue, AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue,
            AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue, AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue,
            AMQP_STATUS_SSL_SET_ENGINE_FAILED.rawValue:
            self.init(
                .tlsFailed, operation: operation, reason: text,
                hint:
                    "Check cacertfile (the CA that signed the broker's certificate) and that the URL's host matches the certificate's name"
            )
        case AMQP_STATUS_CONNECTION_CLOSED.rawValue, AMQP_STATUS_SOCKET_ERROR.rawValue,
            AMQP_STATUS_SOCKET_CLOSED.rawValue,
            AMQP_STATUS_TCP_ERROR.rawValue:
            self.init(
                .connectionLost, operation: operation, reason: text,
                hint: "The connection to the broker broke; Celeriac reconnects")
        default:
            self.init(.protocolError, operation: operation, reason: text)
        }
    }

    init(connectionClose code: UInt16, text: String, operation: String) {
        switch code {
        case 403:
            self.init(
                .accessRefused, operation: operation, replyCode: code, reason: text,
                hint: "Check the user name and password in the broker URL")
        case 530:
            self.init(
                .vhostNotFound, operation: operation, replyCode: code, reason: text,
                hint:
                    "Check the virtual host in the broker URL (create it with `rabbitmqctl add_vhost` and grant permissions)"
            )
        case 320:
            self.init(
                .connectionClosed, operation: operation, replyCode: code, reason: text,
                hint: "The broker was shut down or an operator closed the connection; Celeriac reconnects")
        default:
            self.init(.connectionClosed, operation: operation, replyCode: code, reason: text)
        }
    }

    init(channelClose code: UInt16, text: String, operation: String) {
        let hint: String? =
            switch code {
            case 404: "The exchange or queue does not exist; declare it first"
            case 406:
                "An existing queue or exchange was declared with other flags or arguments; use the same ones or delete it"
            case 405: "The queue is exclusive to another connection (a second worker with the same node name?)"
            case 403: "The user has no permission for this resource"
            default: nil
            }
        self.init(.channelClosed, operation: operation, replyCode: code, reason: text, hint: hint)
    }
}
