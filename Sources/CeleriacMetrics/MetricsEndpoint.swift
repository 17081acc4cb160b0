import Prometheus
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Serves `GET /metrics` (Prometheus text format 0.0.4), `/healthz` and `/readyz` on its own OS thread.
///
/// The server never runs on Swift's cooperative pool, so a blocked or busy pool (2 threads on a 2-core box)
/// cannot make scrapes or health checks time out. One thread serves every connection with `poll`: each has 2 s for
/// its whole request and answer, at most 32 are open at once, so a slow or hostile client cannot hold a scrape or
/// a liveness probe. Kept on its own thread rather than on swift-nio: the endpoint answers three fixed paths, and
/// swift-nio would cost every build of the package more than the whole module.
///
/// ```swift
/// let endpoint = MetricsEndpoint(registry: registry, host: "0.0.0.0", port: 9808, isReady: { worker.isReady })
/// try await ServiceGroup(services: [worker, endpoint], ...).run()
/// ```
public final class MetricsEndpoint: Service, Sendable {
    /// The address to listen on: `0.0.0.0` or `::` for every interface (IPv4 and IPv6), or one IPv4 or IPv6 address;
    /// host names are not resolved.
    public let host: String
    /// The TCP port to listen on; 0 lets the system choose one (``start()`` returns it).
    public let port: Int
    let registry: PrometheusCollectorRegistry
    let isReady: @Sendable () -> Bool
    private let state = Mutex<(listen: Int32, wakeRead: Int32, wakeWrite: Int32)?>(nil)

    /// An endpoint serving `registry`; nothing listens before ``start()`` or ``run()``. `/readyz` answers 200 while
    /// `isReady` returns true and 503 otherwise; `/healthz` always answers 200.
    public init(
        registry: PrometheusCollectorRegistry, host: String = "0.0.0.0", port: Int,
        isReady: @escaping @Sendable () -> Bool
    ) {
        self.registry = registry
        self.host = host
        self.port = port
        self.isReady = isReady
    }

    /// The endpoint could not listen: the host is not an IP address, or the port is in use.
    public struct BindError: Error, CustomStringConvertible {
        /// What failed, with the system's reason and what to change.
        public let description: String
    }

    /// Binds and starts serving; returns the bound port (useful with port 0).
    ///
    /// `0.0.0.0` and `::` listen on every interface, IPv4 and IPv6 alike (one dual-stack socket; IPv4 only where
    /// the system has no IPv6). Another address listens on that address only.
    @discardableResult
    public func start() throws -> Int {
        let fd = try Self.listeningSocket(host: host, port: port)
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        var actual = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let family = Int32(actual.ss_family)
        let boundPort: UInt16 = withUnsafePointer(to: &actual) { p in
            if family == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    UInt16(bigEndian: $0.pointee.sin6_port)
                }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
        var pipeFDs: [Int32] = [0, 0]
        _ = pipe(&pipeFDs)
        state.withLock { $0 = (fd, pipeFDs[0], pipeFDs[1]) }
        let thread = ServerThread(listenFD: fd, wakeFD: pipeFDs[0], registry: registry, isReady: isReady)
        var tid = pthread_t()
        let box = Unmanaged.passRetained(thread).toOpaque()
        pthread_create(
            &tid, nil,
            { arg in
                let t = Unmanaged<ServerThread>.fromOpaque(arg!).takeRetainedValue()
                t.serve()
                return nil
            }, box)
        pthread_detach(tid)
        return Int(boundPort)
    }

    /// A bound, listening TCP socket for `host` (an IPv4 or IPv6 literal; `0.0.0.0` and `::` mean every interface,
    /// both families).
    private static func listeningSocket(host: String, port: Int) throws -> Int32 {
        var v4 = sockaddr_in()
        v4.sin_family = sa_family_t(AF_INET)
        v4.sin_port = in_port_t(UInt16(port).bigEndian)
        var v6 = sockaddr_in6()
        v6.sin6_family = sa_family_t(AF_INET6)
        v6.sin6_port = in_port_t(UInt16(port).bigEndian)
        let everywhere = host == "0.0.0.0" || host == "::"
        let isV4 = !everywhere && inet_pton(AF_INET, host, &v4.sin_addr) == 1
        let isV6 = !everywhere && !isV4 && inet_pton(AF_INET6, host, &v6.sin6_addr) == 1
        guard everywhere || isV4 || isV6 else {
            throw BindError(
                description:
                    "metrics endpoint: '\(host)' is not an IPv4 or IPv6 address (use 0.0.0.0 or :: for every interface, 127.0.0.1 or ::1 for this host only)"
            )
        }
        func bound(_ fd: Int32, _ address: UnsafeRawPointer, _ size: Int) throws -> Int32 {
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            let ok =
                bind(fd, address.assumingMemoryBound(to: sockaddr.self), socklen_t(size)) == 0 && listen(fd, 64) == 0
            guard ok else {
                let e = String(cString: strerror(errno))
                close(fd)
                throw BindError(
                    description:
                        "metrics endpoint: cannot listen on \(host):\(port): \(e). Is another process using the port? Choose one with --metrics-port"
                )
            }
            return fd
        }
        if everywhere || isV6 {
            let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd >= 0 {
                // Dual stack for "every interface"; an IPv6 literal listens on IPv6 only.
                var v6only: Int32 = isV6 ? 1 : 0
                setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &v6only, socklen_t(MemoryLayout<Int32>.size))
                if everywhere { v6.sin6_addr = in6addr_any }
                return try withUnsafePointer(to: &v6) {
                    try bound(fd, UnsafeRawPointer($0), MemoryLayout<sockaddr_in6>.size)
                }
            }
            guard everywhere else {
                throw BindError(
                    description:
                        "metrics endpoint: this system has no IPv6 (\(String(cString: strerror(errno)))); listen on 0.0.0.0"
                )
            }
            v4.sin_addr.s_addr = INADDR_ANY
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw BindError(description: "metrics endpoint: socket() failed: \(String(cString: strerror(errno)))")
        }
        return try withUnsafePointer(to: &v4) { try bound(fd, UnsafeRawPointer($0), MemoryLayout<sockaddr_in>.size) }
    }

    /// Stops serving: wakes the server thread, which closes the listening socket. Does nothing when not serving.
    public func stop() {
        guard
            let s = state.withLock({ current -> (listen: Int32, wakeRead: Int32, wakeWrite: Int32)? in
                let s = current
                current = nil
                return s
            })
        else { return }
        var b: UInt8 = 1
        _ = write(s.wakeWrite, &b, 1)
    }

    /// The `ServiceLifecycle` entry point: starts serving unless ``start()`` already did, waits for the graceful
    /// shutdown, then stops.
    ///
    /// - Throws: ``BindError`` when it cannot listen.
    public func run() async throws {
        if state.withLock({ $0 == nil }) { try start() }
        try? await gracefulShutdown()
        stop()
    }
}

/// The server loop: one OS thread, non-blocking sockets and `poll`, so a slow client never holds up another.
///
/// Every connection has one deadline for the whole exchange (``ServerThread/requestDeadline`` from accept to the
/// last byte of the answer, reading and writing), at most ``ServerThread/maxConnections`` are open at once (the
/// oldest is dropped for a newcomer), and a request head is at most 8 KiB. A client that trickles its request, or
/// reads the answer slowly, is cut off at the deadline while scrapes and probes go on around it.
private final class ServerThread: Sendable {
    static let requestDeadline: Int64 = 2_000  // ms
    static let maxConnections = 32
    static let maxHead = 8_192

    let listenFD: Int32
    let wakeFD: Int32
    let registry: PrometheusCollectorRegistry
    let isReady: @Sendable () -> Bool

    init(listenFD: Int32, wakeFD: Int32, registry: PrometheusCollectorRegistry, isReady: @escaping @Sendable () -> Bool)
    {
        self.listenFD = listenFD
        self.wakeFD = wakeFD
        self.registry = registry
        self.isReady = isReady
    }

    /// One client: its request head as it arrives, then its answer as it leaves.
    struct Connection {
        let fd: Int32
        let deadline: Int64
        var request: [UInt8] = []
        var response: [UInt8]? = nil
        var sent = 0
    }

    static func nowMillis() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Int64(t.tv_sec) * 1000 + Int64(t.tv_nsec) / 1_000_000
    }

    func serve() {
        var connections: [Connection] = []
        defer {
            for c in connections { close(c.fd) }
            close(listenFD)
            close(wakeFD)
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let now = Self.nowMillis()
            // Past its deadline: cut off, whatever it was doing.
            connections.removeAll { c in
                guard c.deadline <= now else { return false }
                close(c.fd)
                return true
            }
            var fds = [
                pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
            ]
            for c in connections {
                fds.append(pollfd(fd: c.fd, events: Int16(c.response == nil ? POLLIN : POLLOUT), revents: 0))
            }
            let nextDeadline = connections.map(\.deadline).min()
            let timeout = nextDeadline.map { Int32(clamping: max(0, $0 - now)) } ?? -1
            let rc = poll(&fds, nfds_t(fds.count), timeout)
            if rc < 0 && errno == EINTR { continue }
            if fds[1].revents != 0 { return }
            // Serve the open connections first (their indexes match fds[2...]).
            var closed = Set<Int>()
            for i in connections.indices where fds[i + 2].revents != 0 {
                if !step(&connections[i], buffer: &buffer) { closed.insert(i) }
            }
            if !closed.isEmpty {
                for i in closed.sorted(by: >) {
                    close(connections[i].fd)
                    connections.remove(at: i)
                }
            }
            if fds[0].revents != 0 {
                let client = accept(listenFD, nil, nil)
                guard client >= 0 else { continue }
                _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                if connections.count >= Self.maxConnections {
                    // Full: the oldest connection (the nearest deadline) makes room for the new one.
                    let oldest = connections.indices.min { connections[$0].deadline < connections[$1].deadline }!
                    close(connections[oldest].fd)
                    connections.remove(at: oldest)
                }
                connections.append(Connection(fd: client, deadline: Self.nowMillis() + Self.requestDeadline))
            }
        }
    }

    /// Reads or writes what the socket allows now. False when the connection is done (answered, or given up).
    private func step(_ c: inout Connection, buffer: inout [UInt8]) -> Bool {
        if c.response == nil {
            let n = read(c.fd, &buffer, buffer.count)
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return true }
            guard n > 0 else { return false }
            c.request.append(contentsOf: buffer[0..<n])
            if c.request.firstRange(of: [13, 10, 13, 10]) != nil {
                c.response = answer(c.request)
            } else if c.request.count >= Self.maxHead {
                c.response = Self.response(
                    "431 Request Header Fields Too Large", "text/plain", Array("request head over 8 KiB\n".utf8),
                    head: false)
            } else {
                return true
            }
        }
        guard let response = c.response else { return true }
        while c.sent < response.count {
            let n = response[c.sent...].withUnsafeBytes { write(c.fd, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return true }
            guard n > 0 else { return false }
            c.sent += n
        }
        return false
    }

    /// The answer to a complete request head.
    private func answer(_ request: [UInt8]) -> [UInt8] {
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        let method = parts.first.map(String.init) ?? ""
        let path = parts.count > 1 ? String(parts[1].split(separator: "?").first ?? "") : ""
        let (status, type, body): (String, String, [UInt8])
        switch (method, path) {
        case ("GET", "/metrics"), ("HEAD", "/metrics"):
            ProcessMetrics.update(registry)
            (status, type, body) = ("200 OK", "text/plain; version=0.0.4; charset=utf-8", registry.emitToBuffer())
        case ("GET", "/healthz"), ("HEAD", "/healthz"):
            (status, type, body) = ("200 OK", "text/plain", Array("ok\n".utf8))
        case ("GET", "/readyz"), ("HEAD", "/readyz"):
            (status, type, body) =
                isReady()
                ? ("200 OK", "text/plain", Array("ready\n".utf8))
                : ("503 Service Unavailable", "text/plain", Array("not ready\n".utf8))
        case ("GET", _), ("HEAD", _):
            (status, type, body) = ("404 Not Found", "text/plain", Array("try /metrics, /healthz or /readyz\n".utf8))
        default:
            (status, type, body) = ("405 Method Not Allowed", "text/plain", Array("GET only\n".utf8))
        }
        return Self.response(status, type, body, head: method == "HEAD")
    }

    static func response(_ status: String, _ type: String, _ body: [UInt8], head: Bool) -> [UInt8] {
        var response = Array(
            "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
                .utf8)
        if !head { response += body }
        return response
    }
}
