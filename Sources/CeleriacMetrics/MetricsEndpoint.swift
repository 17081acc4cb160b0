import Prometheus
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Serves `GET /metrics` (Prometheus text format 0.0.4), `/healthz` and `/readyz` on its own OS thread.
///
/// The server never runs on Swift's cooperative pool, so a blocked or busy pool (2 threads on a 2-core box)
/// cannot make scrapes or health checks time out. Requests are answered one at a time; each is tiny.
///
/// ```swift
/// let endpoint = MetricsEndpoint(registry: registry, host: "0.0.0.0", port: 9808, isReady: { worker.isReady })
/// try await ServiceGroup(services: [worker, endpoint], ...).run()
/// ```
public final class MetricsEndpoint: Service, Sendable {
    /// The IPv4 address to listen on (`0.0.0.0` for every interface); host names are not resolved.
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

    /// The endpoint could not listen: the host is not an IPv4 address, or the port is in use.
    public struct BindError: Error, CustomStringConvertible {
        /// What failed, with the system's reason and what to change.
        public let description: String
    }

    /// Binds and starts serving; returns the bound port (useful with port 0).
    @discardableResult
    public func start() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else {
            throw BindError(description: "metrics endpoint: socket() failed: \(String(cString: strerror(errno)))")
        }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
            close(fd)
            throw BindError(
                description: "metrics endpoint: '\(host)' is not an IPv4 address (use 0.0.0.0 or 127.0.0.1)")
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let e = String(cString: strerror(errno))
            close(fd)
            throw BindError(
                description:
                    "metrics endpoint: cannot listen on \(host):\(port): \(e). Is another process using the port? Choose one with --metrics-port"
            )
        }
        var actual = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        var pipeFDs: [Int32] = [0, 0]
        _ = pipe(&pipeFDs)
        state.withLock { $0 = (fd, pipeFDs[0], pipeFDs[1]) }
        let registry = self.registry
        let isReady = self.isReady
        let wake = pipeFDs[0]
        let thread = ServerThread(listenFD: fd, wakeFD: wake, registry: registry, isReady: isReady)
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
        return Int(UInt16(bigEndian: actual.sin_port))
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

/// The accept loop. Owns its file descriptors and closes them when told to stop through the wake pipe.
private final class ServerThread: Sendable {
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

    func serve() {
        defer {
            close(listenFD)
            close(wakeFD)
        }
        while true {
            var fds = [
                pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
            ]
            let rc = poll(&fds, 2, -1)
            if rc < 0 && errno == EINTR { continue }
            if fds[1].revents != 0 { return }
            guard fds[0].revents != 0 else { continue }
            let client = accept(listenFD, nil, nil)
            guard client >= 0 else { continue }
            handle(client)
            close(client)
        }
    }

    private func handle(_ fd: Int32) {
        var request = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 2048)
        // Read the request head, bounded in size and time (2 s), so a slow client cannot hold the endpoint.
        while request.count < 8192 {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 2000) > 0 else { return }
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { return }
            request.append(contentsOf: buffer[0..<n])
            if request.count >= 4, request.suffix(request.count).firstRange(of: [13, 10, 13, 10]) != nil { break }
        }
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
        var response = Array(
            "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
                .utf8)
        if method != "HEAD" { response += body }
        var sent = 0
        while sent < response.count {
            let n = response[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            sent += n
        }
    }
}
