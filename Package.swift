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
        .systemLibrary(name: "CHerdSys", pkgConfig: "libsystemd",
                       providers: [.apt(["libsystemd-dev", "pkg-config"])]),
        .target(name: "Handlers", dependencies: ["CHerdSys"]),
        .executableTarget(
            name: "HerdD",
            dependencies: [
                "CHerdSys", "Handlers",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "HandlersTests", dependencies: ["Handlers"]),
        .testTarget(name: "HerdDTests", dependencies: ["HerdD"]),
    ],
    swiftLanguageModes: [.v6]
)
