/* secmem: memory for secrets (access and refresh tokens, the client secret,
 * the token request's form body and response, "Authorization: Bearer ..."
 * header buffers), kept out of core dumps. The systemd unit keeps a core
 * dump of a watchdog abort; whatever sits in these pages does not go into
 * it.
 *
 * Who calls it: any thread of bwprovd, for buffers that hold a secret or a
 * string derived from one, and for nothing else (a chunk, once mapped, stays
 * mapped for reuse, so this is not a general-purpose allocator).
 *
 * What it guarantees:
 * - memory comes from private anonymous mmap() regions marked
 *   madvise(MADV_DONTDUMP): excluded from core dumps (the "dd" flag in
 *   /proc/PID/smaps). If madvise fails (a kernel before 3.4, a seccomp
 *   filter), allocation still works and secmem_dontdump_error() tells;
 * - a new allocation is zeroed; secmem_free() wipes the whole block with
 *   explicit_bzero() before it is reused or unmapped, and secmem_realloc()
 *   wipes the block it leaves or the tail it gives up;
 * - alignment for any type (16 bytes); every function is thread-safe;
 * - allocations up to SECMEM_SMALL_MAX bytes share 64 KiB chunks, in
 *   power-of-two size classes from 16 bytes (at most twice the size asked
 *   for, e.g. 512 bytes for a 300-byte header); larger ones get a mapping of
 *   their own, rounded up to whole pages and unmapped on free.
 *
 * What it does not guarantee:
 * - it covers only the bytes in these buffers. libcurl (its request and
 *   receive buffers, which hold the form body, the token answer and the
 *   Authorization header line), OpenSSL (TLS record buffers), json-c (the
 *   parse tree and tokenizer buffer of a token answer) and librdkafka (its
 *   copy of a configuration secret) keep copies in ordinary heap memory,
 *   which is in a core dump and is not wiped. So are stack copies the
 *   callers make: keep secrets out of local arrays;
 * - the pages are not locked (no mlock: RLIMIT_MEMLOCK is 8 MiB by default
 *   and thousands of header buffers would exceed it), so they can be
 *   swapped out;
 * - it is no protection against the process itself, a debugger or root
 *   (ptrace, /proc/PID/mem);
 * - MADV_WIPEONFORK is not used: bwprovd never forks; a fork()ed child
 *   inherits MADV_DONTDUMP anyway, so its core dump is covered too, and a
 *   child that execs drops the copy; wiping would also zero the region
 *   headers this allocator keeps in the mappings, so a child that freed a
 *   secmem pointer would abort.
 *
 * Passing a pointer that secmem did not return, or freeing one twice, is
 * undefined; a pointer whose region header is not secmem's aborts. */
#ifndef BWPROVD_SECMEM_H
#define BWPROVD_SECMEM_H

#include <stddef.h>

/* Largest allocation carved from a shared chunk. */
#define SECMEM_SMALL_MAX 4096

/* n zeroed bytes (n 0 counts as 1), or NULL with errno ENOMEM. */
void *secmem_alloc(size_t n);
/* Wipes the block, then releases it. NULL is fine. */
void secmem_free(void *p);
/* Like realloc(): the contents up to the smaller of the two sizes are kept,
 * bytes beyond the old size are zero. Grows in place while the size class
 * (or the pages) allow, else moves and wipes the old block; n 0 counts
 * as 1. NULL p allocates; on failure returns NULL and p is left as it
 * was. */
void *secmem_realloc(void *p, size_t n);
/* Copies of s, and of at most n bytes of s (which need not be
 * NUL-terminated), always NUL-terminated; NULL when out of memory. */
char *secmem_strdup(const char *s);
char *secmem_strndup(const char *s, size_t n);

/* 0 while every region was excluded from core dumps, else the errno of the
 * first madvise(MADV_DONTDUMP) failure (it stays set): log it once. */
int secmem_dontdump_error(void);

struct secmem_stats {
    size_t live;   /* allocations not freed yet */
    size_t chunks; /* shared chunks mapped (kept for reuse) */
    size_t large;  /* large allocations, one mapping each */
    size_t mapped; /* bytes mapped in all */
};
void secmem_stats(struct secmem_stats *st);

#endif
