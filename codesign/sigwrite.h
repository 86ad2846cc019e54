/* Writing a signature folder: its components into a fresh folder (or over the files of a
 * recycled one), made durable, then swapped in for _CodeSignature in one step. */
#ifndef SX_CS_SIGWRITE_H
#define SX_CS_SIGWRITE_H

#include <stdbool.h>
#include <stddef.h>

/* Write `name` in `dir` with `data`: a new file, or with `over` the file of that name in a
 * recycled folder, written over when it is a spare (a regular file of ours with no other
 * link; a hard-linked copy of a bundle must never change; anything else is replaced). Over a spare
 * only the pages that differ are written, so its fsync writes as little as changed. The
 * writeback is started; sx_sigwrite_sync makes it durable. */
int sx_sigwrite_component(const char *dir, const char *name, const void *data, size_t len,
                          bool over);
/* fsync `name` in `dir`. Called only after every component is written: the first fsync
 * commits one journal transaction holding them all. */
int sx_sigwrite_sync(const char *dir, const char *name);

/* An incremental sign keeps the signature it replaced in its cache folder (`trash`), and the
 * next one takes that folder as its fresh one (only ours, and writable by nobody else):
 * renamed over the empty folder `dir`. True when it was. Its CodeResources is the same size give or take, pages in memory and blocks
 * allocated, and mostly the same bytes, where a new file of megabytes needs both and the old
 * one's removal frees both again (about 2 ms each way for 2.6 MB here, and the fsync of all
 * of it); the small files spare an inode and a directory entry each. */
bool sx_sigwrite_recycle(const char *trash, const char *dir);
/* Remove from a recycled folder whatever is not one of `keep`. */
int sx_sigwrite_prune(const char *dir, const char *const *keep, size_t nkeep);

/* Replace `target` (_CodeSignature) with `fresh` in one step (an exchange; without a target a
 * plain rename). *had_old tells whether `fresh` now holds the old signature. */
int sx_sigwrite_swap(const char *fresh, const char *target, bool *had_old);

#endif
