# Cross-compiling for 64-bit Arm Linux with Debian's g++-aarch64-linux-gnu and the arm64 builds of the
# dependencies (multiarch: `dpkg --add-architecture arm64`, then libhwy-dev:arm64 ...), as
# scripts/test-arm64.sh installs them. The binaries run under qemu-aarch64 (Debian's qemu-user).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Debian's multiarch layout: arm64 libraries and CMake package files under /usr/lib/aarch64-linux-gnu,
# headers shared in /usr/include. CMake finds them through the library architecture.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
# gtest_discover_tests runs each test binary to list its tests: through qemu.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
