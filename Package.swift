// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Sirius",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sirius-coord", targets: ["sirius-coord"]),
        .executable(name: "sirius-worker", targets: ["sirius-worker"]),
        .library(name: "SiriusEngine", targets: ["SiriusEngine"]),
        .library(name: "SiriusTasks", targets: ["SiriusTasks"]),
        .library(name: "SiriusProtocol", targets: ["SiriusProtocol"]),
        .library(name: "SiriusMethod", targets: ["SiriusMethod"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        // C libraries from Debian packages.
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZMQ", path: "Sources/CZMQ",
                       providers: [.apt(["libzmq3-dev"])]),
        // SHA-256 for lm-evaluation-harness's hashes.
        .systemLibrary(name: "CLibCrypto", path: "Sources/CLibCrypto", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        // Hot quantised dot-product kernels (AVX2 with a scalar fallback chosen at run time).
        .target(name: "CKernels", path: "Sources/CKernels", cSettings: [.unsafeFlags(["-O3"])]),

        // The method vocabulary shared by every other target: method spec, defaults, counters.
        .target(name: "SiriusMethod", path: "Sources/Method"),
        .target(name: "SiriusEngine", dependencies: ["CKernels", "COpenBLAS", "SiriusMethod"], path: "Sources/Engine"),
        .target(name: "SiriusTasks", dependencies: ["CZlib"], path: "Sources/Tasks"),
        .target(name: "SiriusProtocol", dependencies: ["CZMQ", "SiriusMethod"], path: "Sources/Protocol"),

        .executableTarget(
            name: "sirius-coord",
            dependencies: [
                "SiriusTasks", "SiriusProtocol", "SiriusMethod", "CLibCrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Sources/Coordinator"),
        .executableTarget(
            name: "sirius-worker",
            dependencies: [
                "SiriusEngine", "SiriusTasks", "SiriusProtocol", "SiriusMethod",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/Worker"),

        .target(name: "TestSupport", dependencies: ["SiriusEngine", "SiriusMethod"], path: "Tests/TestSupport"),
        .testTarget(name: "EngineTests", dependencies: ["SiriusEngine", "SiriusMethod", "TestSupport"],
                    path: "Tests/EngineTests", resources: [.copy("Fixtures")]),
        .testTarget(name: "TasksTests", dependencies: ["SiriusTasks"], path: "Tests/TasksTests"),
        .testTarget(name: "ProtocolTests", dependencies: ["SiriusProtocol", "SiriusMethod"], path: "Tests/ProtocolTests"),
        .testTarget(name: "CoordinatorTests", dependencies: ["sirius-coord", "SiriusTasks", "SiriusProtocol", "SiriusMethod"],
                    path: "Tests/CoordinatorTests", resources: [.copy("Fixtures")]),
        // Real sirius-coord / sirius-worker processes on loopback (fake engine, and the real engine on a tiny
        // random model from TestSupport); needs both executables built.
        .testTarget(name: "IntegrationTests", dependencies: ["TestSupport", "SiriusProtocol", .product(name: "GRDB", package: "GRDB.swift")],
                    path: "Tests/IntegrationTests"),
    ],
    swiftLanguageModes: [.v6]
)
