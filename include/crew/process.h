/*
 * crew/process.h - run one function in a child process and join it
 * (Python's multiprocessing.Process, for C).
 *
 * crew_process_start() forks the calling process; the child runs fn(in, out)
 * and exits with fn's return value (truncated to 0..255, as exit() does).
 * The input is the child's copy of memory at the fork; the output lives in
 * memory shared with the parent, readable after the join.
 *
 * Thread safety: every function may be called from any thread at once on
 * the same process (for example one thread joins while another kills),
 * except crew_process_destroy(), which must be the last call.
 *
 * Fork: the child is a fork() of the calling process. Like any fork in a
 * program with several threads, only the calling thread exists in the
 * child, and a lock another thread held at that moment stays locked there:
 * fn should not need locks other threads may hold (glibc keeps malloc and
 * stdio usable). Before forking, crew flushes stdout and stderr so that
 * buffered output is not written twice. The child inherits every descriptor,
 * handler and setting a forked child inherits.
 *
 * Reaping: the child stays a zombie until joined, so its pid is never reused
 * while crew may still signal it. An application SIGCHLD handler that reaps
 * every child (waitpid(-1, ...)) takes this one too; the join then reports
 * CREW_ECRASHED as the exit code is lost.
 */
#ifndef CREW_PROCESS_H
#define CREW_PROCESS_H

#include <crew/common.h>
#include <crew/pool.h>

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crew_process crew_process;

/*
 * crew_process_start - fork a child that runs fn(in, out) and exits with its
 * return value.
 *
 * in may be NULL only with in_size 0 (fn then gets NULL); out_size bytes of
 * shared memory are given to fn as `out` (NULL when out_size is 0). On
 * success *p owns the process until crew_process_destroy(). Returns 0,
 * CREW_EINVAL (p or fn NULL, in NULL with in_size > 0) or CREW_ENOMEM (no
 * memory for out_size, or fork() failed). Never blocks beyond the fork.
 */
CREW_API int crew_process_start(crew_process **p, crew_fn fn, const void *in,
                                size_t in_size, size_t out_size);

/*
 * crew_process_join - wait until the child has ended, reap it, and set
 * *exit_code (if exit_code is not NULL): its exit status 0..255, or -N if
 * signal N ended it (Python's convention). Joining again gives the same.
 * Returns 0, CREW_EINVAL (p NULL) or CREW_ECRASHED (the exit status was
 * lost: something else reaped the child).
 */
CREW_API int crew_process_join(crew_process *p, int *exit_code);

/*
 * crew_process_join_timed - crew_process_join() waiting at most timeout_ns;
 * CREW_ETIMEDOUT if the child is still running then.
 */
CREW_API int crew_process_join_timed(crew_process *p, int *exit_code,
                                     uint64_t timeout_ns);

/*
 * crew_process_result - after a join, copy the first out_size bytes of what
 * fn wrote to `out`. Returns 0; CREW_EBUSY if not joined yet; CREW_ECRASHED
 * if fn did not return (the child crashed, was killed, or exited inside fn),
 * out untouched; CREW_EINVAL (p NULL, out NULL with out_size > 0, out_size
 * above the out_size given at start).
 */
CREW_API int crew_process_result(crew_process *p, void *out, size_t out_size);

/*
 * crew_process_kill - send signal signo to the child if it has not been
 * reaped yet (after that, nothing is sent: the pid may belong to someone
 * else; where the kernel has pidfds this holds even if an application
 * handler reaped the child). signo 0 sends nothing, as with kill(2).
 * Returns 0, or CREW_EINVAL (p NULL, signo negative or not below NSIG).
 */
CREW_API int crew_process_kill(crew_process *p, int signo);

/*
 * crew_process_alive - whether the child is still running (not ended). Never
 * blocks; does not reap. false for NULL.
 */
CREW_API bool crew_process_alive(crew_process *p);

/* crew_process_pid - the child's process id; -1 for NULL. */
CREW_API pid_t crew_process_pid(const crew_process *p);

/*
 * crew_process_destroy - free the process; a child still running is killed
 * (SIGKILL) and reaped first. NULL is a no-op.
 */
CREW_API void crew_process_destroy(crew_process *p);

#ifdef __cplusplus
}
#endif

#endif /* CREW_PROCESS_H */
