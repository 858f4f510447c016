// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "herdd",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "herdd", targets: ["HerddMain"]),
        // The whole server as a library: `import Herd`, register handlers, call HerdServer.main().
        .library(name: "Herd", targets: ["Herd"]),
        .library(name: "Handlers", targets: ["Handlers"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        // `swift package generate-documentation` (DocC catalogs in Sources/Herd, Sources/Handlers).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // C view of the Linux and libsystemd APIs Glibc does not export (epoll, signalfd,
        // accept4, prctl, sendfile, memfd, sd-daemon, sd-journal) plus tiny atomics helpers.
        // A C target (include/shim.h + shim.c), not a .systemLibrary: SwiftPM tracks its header,
        // so an edit to shim.h rebuilds every module that imports it (Tests/shim-rebuild.sh).
        // libsystemd-dev provides the sd-* headers (in /usr/include) and libsystemd.so.
        .target(name: "CHerdSys", linkerSettings: [.linkedLibrary("systemd")]),
        // The system layer: every system call of herdd, its handlers and its HTTP module goes
        // through this module (`package` access, not part of any product's API): typed errors
        // naming call and errno, one EINTR policy, Epoll with one tag enum (Sources/HerdSys).
        // Tests/syscall-check.sh fails if a Swift file elsewhere makes a raw call.
        .target(name: "HerdSys", dependencies: ["CHerdSys"]),
        // The pure part of libc (memchr, memcmp, errno and signal numbers, C types of the layer's
        // API): the allowlist of what code outside HerdSys may use of libc, which no other module
        // imports (docs/design-system-layer.md, Tests/syscall-check.sh).
        .target(name: "HerdLibc"),
        // HTTP/1.x on its own: request parser, headers, requests, responses and their heads
        // (Sources/HerdHTTP). No server state, no system call; the worker's connection code drives it.
        .target(name: "HerdHTTP", dependencies: ["HerdLibc"]),
        // The handler protocol and the built-in handlers; re-exports HerdHTTP (Handler.swift).
        .target(name: "Handlers", dependencies: ["HerdSys", "HerdLibc", "HerdHTTP"]),
        // The server: master, workers, CLI, config, metrics, logs (Sources/HerdD).
        .target(
            name: "HerdD",
            dependencies: [
                "HerdSys", "HerdLibc", "Handlers",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Fault-injection hooks (HERDD_TEST_* environment variables) exist only in debug
            // builds, which the integration tests run; a release build (the .deb) has none.
            swiftSettings: [.define("HERDD_TEST_HOOKS", .when(configuration: .debug))]),
        // What a user imports: the server's entry point and the handler API in one module.
        // The routing API (Sources/Herd/Routing) lives here, on top of the handler protocol.
        .target(name: "Herd", dependencies: [
            "HerdD", "Handlers", "HerdLibc", "HerdSys",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // herdd itself: a thin main on top of the library.
        .executableTarget(name: "HerddMain", dependencies: ["Herd"]),
        // A Herd program whose name comes from the environment: the test of HerdServer.main's
        // refusals (Tests/integration/test_cli.py). Built with the tests, never packaged.
        .executableTarget(name: "HerdMainProbe", dependencies: ["Herd"], path: "Tests/probes/HerdMainProbe"),
        // One test target per module (HerdHTTPTests: the parser and the response head).
        .testTarget(name: "HerdSysTests", dependencies: ["HerdSys", "HerdLibc"]),
        .testTarget(name: "HerdHTTPTests", dependencies: ["HerdHTTP"]),
        .testTarget(name: "HandlersTests", dependencies: ["Handlers", "HerdHTTP"]),
        .testTarget(name: "HerdDTests", dependencies: ["HerdD", "HerdSys"]),
        .testTarget(name: "HerdTests", dependencies: ["Herd"]),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer targets (Tests/fuzz, docs/fuzzing.md): declared only when Tests/fuzz/run.sh builds
// them (HERDD_FUZZ=1, `-sanitize=fuzzer,address`), because an executable without `main` does not
// link in an ordinary build: libFuzzer supplies `main`. In this package so that they reach the
// `package` API of HerdHTTP and Handlers and, with `@testable import`, HerdD's config parsers.
if Context.environment["HERDD_FUZZ"] == "1" {
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("FuzzHTTPParser", ["HerdHTTP"]),
        ("FuzzChunked", ["HerdHTTP"]),
        ("FuzzStaticHeaders", ["Handlers"]),
        ("FuzzConfig", ["HerdD"]),
        ("FuzzListen", ["HerdD"]),
    ]
    for t in fuzzTargets {
        package.targets.append(.executableTarget(
            name: t.name, dependencies: t.dependencies + ["FuzzSupport"], path: "Tests/fuzz/targets/\(t.name)",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
    }
    package.targets.append(.target(name: "FuzzSupport", dependencies: ["HerdHTTP"], path: "Tests/fuzz/targets/FuzzSupport"))
}
