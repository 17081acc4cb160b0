#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Blocking file-descriptor I/O for the pool's pipes. Only called on the pool's own threads or for small frames
/// whose reader drains continuously, so a cooperative thread is never parked for long.
enum FileDescriptors {
    /// A pipe whose both ends close on exec (posix_spawn dup2s the child's ends onto 3 and 4, which clears it).
    static func pipe() -> (read: Int32, write: Int32)? {
        var fds: [Int32] = [-1, -1]
        if let pipe2 = GNU.pipe2 {
            // Atomic: no other thread's posix_spawn can inherit these between pipe() and fcntl().
            guard pipe2(&fds, O_CLOEXEC) == 0 else { return nil }
        } else {
            guard Glibc.pipe(&fds) == 0 else { return nil }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        return (fds[0], fds[1])
    }

    /// Writes all bytes; false when the reader is gone (EPIPE) or another error happened.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { buf in
                write(fd, buf.baseAddress! + offset, buf.count - offset)
            }
            if n > 0 {
                offset += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }

    /// Reads what is available (blocking until something is); empty at EOF or on error.
    static func readSome(_ fd: Int32, into buffer: inout [UInt8]) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            return max(0, n)
        }
    }

    static func close(_ fd: Int32) {
        #if canImport(Glibc)
            _ = Glibc.close(fd)
        #else
            _ = Darwin.close(fd)
        #endif
    }

    /// Starts a detached OS thread (the pool's readers must never occupy a cooperative thread).
    static func startThread(_ body: @escaping @Sendable () -> Void) {
        final class Box: Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        #if canImport(Glibc)
            var tid = pthread_t()
        #else
            var tid: pthread_t?
        #endif
        let rc = pthread_create(
            &tid, nil,
            { arg in
                let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
                box.body()
                return nil
            }, box)
        precondition(rc == 0, "pthread_create failed (\(rc)): cannot start a process-pool thread")
        #if canImport(Glibc)
            pthread_detach(tid)
        #else
            pthread_detach(tid!)
        #endif
    }

    /// Resident set size of a process in bytes (Linux: /proc/PID/statm; elsewhere this process's peak from getrusage).
    static func residentBytes(of pid: pid_t? = nil) -> Int64 {
        #if os(Linux)
            let fd = open(pid.map { "/proc/\($0)/statm" } ?? "/proc/self/statm", O_RDONLY)
            if fd >= 0 {
                defer { close(fd) }
                var buf = [UInt8](repeating: 0, count: 128)
                let n = readSome(fd, into: &buf)
                let fields = String(decoding: buf[0..<n], as: UTF8.self).split(separator: " ")
                if fields.count > 1, let pages = Int64(fields[1]) { return pages * Int64(sysconf(Int32(_SC_PAGESIZE))) }
            }
        #endif
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Int64(usage.ru_maxrss) * 1024
    }
}

/// glibc functions the Glibc module does not import (they need _GNU_SOURCE), looked up at run time.
enum GNU {
    typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    static let pipe2: Pipe2? = symbol("pipe2")
    /// glibc 2.34+: close every descriptor from `n` up in the spawned child.
    static let addCloseFrom: AddCloseFrom? = symbol("posix_spawn_file_actions_addclosefrom_np")

    private static func symbol<T>(_ name: String) -> T? {
        guard let handle = dlopen(nil, RTLD_NOW), let p = dlsym(handle, name) else { return nil }
        return unsafeBitCast(p, to: T.self)
    }
}

/// How a child process ended, from waitpid's status.
public struct ChildExit: Sendable, Equatable, CustomStringConvertible {
    /// The raw `waitpid` status word.
    public let status: Int32
    /// Wraps a status word from `waitpid`.
    public init(status: Int32) { self.status = status }
    /// The signal that killed the child, or nil when it exited (or is stopped).
    public var signal: Int32? { (status & 0x7f) != 0 && (status & 0x7f) != 0x7f ? status & 0x7f : nil }
    /// The child's exit code (0-255), or nil when a signal ended it.
    public var exitCode: Int32? { (status & 0x7f) == 0 ? (status >> 8) & 0xff : nil }
    /// `signal 9 (SIGKILL)` or `exitcode N`, as in Celery's "Worker exited prematurely" message.
    public var description: String {
        if let signal { return "signal \(signal) (\(Self.signalName(signal)))" }
        return "exitcode \(exitCode ?? -1)"
    }
    static func signalName(_ s: Int32) -> String {
        switch s {
        case SIGKILL: "SIGKILL"
        case SIGTERM: "SIGTERM"
        case SIGSEGV: "SIGSEGV"
        case SIGILL: "SIGILL"
        case SIGTRAP: "SIGTRAP"
        case SIGABRT: "SIGABRT"
        case SIGBUS: "SIGBUS"
        case SIGFPE: "SIGFPE"
        case SIGINT: "SIGINT"
        default: "SIG\(s)"
        }
    }
}
