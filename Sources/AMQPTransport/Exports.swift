// The message and topology vocabulary lives in CeleriacWire, so that the broker ports and the in-memory broker
// share it without importing this module; code that talks AMQP keeps seeing it (and its AMQP names) from here.
@_exported import CeleriacWire

/// The transport's errors are the ports' ``BrokerError``; the AMQP-specific initializers are in `AMQPError+C.swift`.
public typealias AMQPError = BrokerError
/// A running AMQP consumer: its tag, its queue and its deliveries.
public typealias AMQPConsumer = Consumer
