// swift-tools-version:6.0
// Hummingbird 2's router served by herdd: a package of its own, so that herdd's core (the
// `Herd` product) stays free of SwiftNIO. It depends on this repository by path for `Herd`,
// and on Hummingbird and hummingbird-auth. See docs/hummingbird.md.
import PackageDescription

let package = Package(
    name: "HerdHummingbird",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "HerdHummingbird", targets: ["HerdHummingbird"]),
        .executable(name: "hb-example", targets: ["hb-example"]),
    ],
    dependencies: [
        .package(name: "herdd", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // NIOEmbedded: the placeholder channel of contexts built from Application's source.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
    ],
    targets: [
        // The bridge: a herdd AsyncHandler that answers with any Hummingbird HTTPResponder.
        .target(name: "HerdHummingbird", dependencies: [
            .product(name: "Herd", package: "herdd"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ]),
        // The example's app: one buildRouter() for both servers.
        .target(name: "HBExampleApp", dependencies: [
            "HerdHummingbird",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ]),
        // `hb-example serve ...` runs under herdd; `hb-example hummingbird ...` on Application.
        .executableTarget(name: "hb-example", dependencies: [
            "HBExampleApp", "HerdHummingbird",
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),
        .testTarget(name: "HerdHummingbirdTests", dependencies: [
            "HerdHummingbird", "HBExampleApp",
            .product(name: "Herd", package: "herdd"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
