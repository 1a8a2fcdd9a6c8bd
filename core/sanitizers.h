#pragma once

// Which sanitizer instruments this build. GCC says so with __SANITIZE_ADDRESS__ and
// __SANITIZE_THREAD__, clang (which builds CI's sanitizer variants) with __has_feature; code that
// must know (a fence TSan cannot see, an allocator ASan replaces) asks HGJ_TSAN and HGJ_ASAN.

#if defined(__SANITIZE_THREAD__)
#define HGJ_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HGJ_TSAN 1
#endif
#endif
#ifndef HGJ_TSAN
#define HGJ_TSAN 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define HGJ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HGJ_ASAN 1
#endif
#endif
#ifndef HGJ_ASAN
#define HGJ_ASAN 0
#endif
