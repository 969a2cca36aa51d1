/*
 * crew.h - the whole public API of libcrew: a bounded multi-producer,
 * multi-consumer queue, a fixed pool of workers (threads or processes) with
 * futures, an ordered map and a windowed one over input of any length,
 * completions for event loops, and single child processes. Include this
 * header; the headers under crew/ are its parts.
 *
 * Start with crew/pool.h. Every function is documented where it is declared:
 * what it does, who owns what, whether it blocks, and its thread safety.
 */
#ifndef CREW_H
#define CREW_H

#include <crew/common.h>
#include <crew/queue.h>
#include <crew/future.h>
#include <crew/pool.h>
#include <crew/imap.h>
#include <crew/process.h>
#include <crew/channel.h>

#endif /* CREW_H */
