// swift-tools-version:6.2
// The Hummingbird 2 peer of bench/run's "async" section: Hummingbird's own server with the
// routes the section measures. Built by bench/herdbench/asyncbench.py (release, its own
// .build), never by ./test.sh or the herdd package.
import PackageDescription

let package = Package(
    name: "hummingbird-peer",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        .executableTarget(name: "HummingbirdPeer", dependencies: [.product(name: "Hummingbird", package: "hummingbird")]),
    ]
)
