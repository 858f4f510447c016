// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "herdd",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "herdd", targets: ["HerdD"]),
        .library(name: "Handlers", targets: ["Handlers"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
    ],
    targets: [
        // C view of the Linux and libsystemd APIs Glibc does not export (epoll, signalfd,
        // accept4, prctl, sendfile, memfd, sd-daemon, sd-journal) plus tiny atomics helpers.
        // A C target (include/shim.h + shim.c), not a .systemLibrary: SwiftPM tracks its header,
        // so an edit to shim.h rebuilds every module that imports it (Tests/shim-rebuild.sh).
        // libsystemd-dev provides the sd-* headers (in /usr/include) and libsystemd.so.
        .target(name: "CHerdSys", linkerSettings: [.linkedLibrary("systemd")]),
        .target(name: "Handlers", dependencies: ["CHerdSys"]),
        .executableTarget(
            name: "HerdD",
            dependencies: [
                "CHerdSys", "Handlers",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Fault-injection hooks (HERDD_TEST_* environment variables) exist only in debug
            // builds, which the integration tests run; a release build (the .deb) has none.
            swiftSettings: [.define("HERDD_TEST_HOOKS", .when(configuration: .debug))]),
        .testTarget(name: "HandlersTests", dependencies: ["Handlers"]),
        .testTarget(name: "HerdDTests", dependencies: ["HerdD"]),
    ],
    swiftLanguageModes: [.v6]
)
