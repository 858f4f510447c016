// swift-tools-version:6.0
// An application of its own on top of herdd: a JSON API over SQLite (GRDB), served by herdd's
// master and prefork workers. The herdd dependency is this repository, by path.
import PackageDescription

let package = Package(
    name: "notes-api",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "notes-api", targets: ["notes-api"]),
        // The routes and the store, for programs that embed them (bench/app serves them).
        .library(name: "NotesAPI", targets: ["NotesAPI"]),
    ],
    dependencies: [
        .package(name: "herdd", path: "../.."),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        // The handlers, as a library so the unit tests can call them directly.
        .target(name: "NotesAPI", dependencies: [
            .product(name: "Herd", package: "herdd"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // main.swift: register the handler, hand the process to herdd.
        .executableTarget(name: "notes-api", dependencies: [
            "NotesAPI",
            .product(name: "Herd", package: "herdd"),
        ]),
        .testTarget(name: "NotesAPITests", dependencies: ["NotesAPI"]),
    ],
    swiftLanguageModes: [.v6]
)
