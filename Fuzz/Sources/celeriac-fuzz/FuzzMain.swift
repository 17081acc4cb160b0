import AMQPTransport
import Foundation

// Two builds of one target:
// - scripts/fuzz.sh builds it with `-sanitize=fuzzer -parse-as-library -D CELERIAC_FUZZ`: libFuzzer's main drives
//   LLVMFuzzerTestOneInput, the target chosen by CELERIAC_FUZZ_TARGET (decoder, crontab, url).
// - a plain `swift build` makes a replayer: `celeriac-fuzz TARGET FILE_OR_DIR...` runs inputs once (a regression
//   check of the committed corpus), and `celeriac-fuzz write-seeds DIR` writes the decoder's seed corpus.

#if CELERIAC_FUZZ
    let selectedTarget: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["CELERIAC_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            fatalError(
                "set CELERIAC_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return target
    }()

    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
        let bytes = size == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: size))
        selectedTarget.run(bytes)
        return 0
    }

    /// libFuzzer's driver entry (compiler-rt's FuzzerInterface.h), for executables that bring their own `main`.
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<Int32>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32

    /// SwiftPM links executables with `main` aliased to `<module>_main`; this is that symbol, and it hands over to
    /// libFuzzer.
    @_cdecl("celeriac_fuzz_main")
    public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
        var count = argc
        var vector = argv
        return LLVMFuzzerRunDriver(&count, &vector, fuzzerTestOneInput)
    }
#else
    @main
    struct Replay {
        static func main() throws {
            let arguments = CommandLine.arguments.dropFirst()
            if arguments.first == "write-seeds", let dir = arguments.dropFirst().first {
                try SeedWriter.writeDecoderSeeds(into: dir)
            } else if let name = arguments.first, let target = FuzzTarget(rawValue: name) {
                var count = 0
                for path in arguments.dropFirst() {
                    var isDirectory: ObjCBool = false
                    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                        FileHandle.standardError.write(Data("celeriac-fuzz: no such file or directory: \(path)\n".utf8))
                        exit(2)
                    }
                    let files =
                        isDirectory.boolValue
                        ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { "\(path)/\($0)" }
                        : [path]
                    for file in files {
                        target.run(Array(try Data(contentsOf: URL(fileURLWithPath: file))))
                        count += 1
                    }
                }
                print("celeriac-fuzz: \(target.rawValue): \(count) inputs ran without a finding")
            } else {
                FileHandle.standardError.write(
                    Data(
                        "usage: celeriac-fuzz decoder|crontab|url FILE_OR_DIR... | celeriac-fuzz write-seeds DIR\n".utf8
                    ))
                exit(2)
            }
        }
    }
#endif
