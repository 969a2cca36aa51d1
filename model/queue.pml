/*
 * queue.pml - a Promela model of crew_queue's wait/wake protocol
 * (lib/queue.c: push_locked, take, sleep_on, wake, private_close; for
 * CREW_SHARED, lib/shqueue.c and lib/slock.c: shared_push, shared_pop,
 * wait_on, wake, crew__shq_forget_waiters, crew__slock_wait and _wake).
 * model/README.md maps every step to the code.
 *
 * One configuration is chosen with -D flags (tests/check_model.sh runs
 * them all):
 *   CAP=n         capacity (1 or 2)
 *   NOPS=n        items each producer pushes (2 or 3)
 *   PBATCH=n      items per push call (1: crew_queue_push, 2: push_many)
 *   CBATCH=n      max items per pop call (1: crew_queue_pop, 2: pop_many)
 *   WORKLOAD=     W_QUOTA: consumers pop a fixed share, nobody closes
 *                 W_CLOSE_ANY: init closes at any moment, consumers drain
 *                 W_CLOSE_AFTER: init closes once the producers are done
 *   SHARED        CREW_SHARED: wait sets are futex words (else condvars)
 *   KILLS=n       (SHARED) consumers killed while asleep or just after
 *                 futex_wake chose them; a supervisor then runs
 *                 crew__queue_forget_waiters, like procpool.c handle_exit
 *   NO_SUPERVISOR (with KILLS) nobody calls forget_waiters: a CREW_SHARED
 *                 queue between user processes
 *   KILL_LOCKED   (with KILLS) a consumer may also die holding the lock,
 *                 right after its take and before its wake-up
 *   SPINNING      the bounded unlocked spin before sleeping (spin_unlocked)
 *   SPURIOUS=n    how many spurious wake-ups the whole run may have
 *   TMO=n         how many waits may time out (every call is timed)
 * The private queue (without SHARED) also counts, per wait set, the
 * signals sent to its sleepers that no sleeper has taken yet (queue.c
 * `signalled`): a wake signals only sleepers nobody signalled, and a
 * waiter whose wait ends takes one off the count; with SPINNING a push
 * signals one popper fewer, once per spin, while a popper spins (it
 * takes that item).
 * Deliberately broken variants (spin must find a counterexample):
 *   BUG_WAS_EMPTY a push wakes one popper only if the queue was empty
 *   BUG_ONE_SET   pushers and poppers share one wait set; wake signals
 *   NO_SLICE      (SHARED) the futex sleep is not sliced at 100 ms (with
 *                 KILLS and NO_SUPERVISOR)
 *   BUG_SIG_KEEP  a woken waiter does not take its signal off the count:
 *                 later sleepers are thought signalled and never are
 *   BUG_SPIN_EVERY (with SPINNING) every push during a popper's spin, not
 *                 only the first, wakes one popper fewer
 *
 * Checks: assertions (count <= capacity at every put; every item taken
 * exactly once and in its producer's order; at the end every pushed item
 * was taken), no invalid end state (deadlock; the watchdog asserts first
 * that no blocked waiter's predicate holds, i.e. no lost wake-up), and the
 * LTL property `live`: every run ends with all calls returned.
 */

#ifndef CAP
#define CAP 1
#endif
#ifndef NOPS
#define NOPS 2
#endif
#ifndef PBATCH
#define PBATCH 1
#endif
#ifndef CBATCH
#define CBATCH 1
#endif
#ifndef SPURIOUS
#define SPURIOUS 1
#endif
#ifndef TMO
#define TMO 1
#endif
#ifndef KILLS
#define KILLS 0
#endif

#define W_QUOTA       0
#define W_CLOSE_ANY   1
#define W_CLOSE_AFTER 2
#ifndef WORKLOAD
#define WORKLOAD W_QUOTA
#endif

#define NPROD 2
#define NCONS 2
#define NW    (NPROD + NCONS)          /* worker pids: 1..NW */
#define QUOTA (NPROD * NOPS / NCONS)   /* W_QUOTA: items per consumer */
#define NPIDS 5 /* indexed by pid: init (0) and the 4 workers */

/* return codes */
#define OK        0
#define ETIMEDOUT 1
#define ECLOSED   2

/* wait sets */
#define NE 1 /* not_empty: poppers */
#define NF 2 /* not_full: pushers */
#ifdef BUG_ONE_SET
#define PUSH_WS NE
#else
#define PUSH_WS NF
#endif
#define POPPER 0
#define PUSHER 1

/* what a loop iteration of push_until / pop_until does next */
#define A_EXIT  0
#define A_AGAIN 1
#define A_SPIN  2
#define A_WAIT  3

#define KILLABLE (_pid > NPROD) /* only consumers (pool workers) die */
#define MIN(a, b) ((a) < (b) -> (a) : (b))
#define ID(p, k)  (((p) - 1) * NOPS + (k) + 1) /* item k of producer p */

/* ------------------------------------------------------------ the queue */
byte mutex;            /* crew_queue.lock: 0 free, else owner pid + 1 */
byte ring[CAP];        /* item ids, 0 = free slot */
byte qh;               /* head % capacity */
byte qn;               /* tail - head: items queued */
byte pop_waiters;      /* crew_queue.pop_waiters */
byte push_waiters;     /* crew_queue.push_waiters */
byte gen;              /* crew_queue.waiter_gen */
bool closed;           /* crew_queue.closed */
bool spinning[2];      /* crew_queue.spinning[POPPER / PUSHER] */
bool promised;         /* a push counted on the popper's spin (2) */
byte sig[3];           /* private: signals not taken yet, per wait set */

/* ------------------------------------------------- wait sets (sync.c) */
/* condvar (private queue): which wait set a thread is blocked in */
byte cvb[NPIDS];
byte ncv[3];           /* how many are blocked in each */
/* futex word (CREW_SHARED): the word itself is abstracted to "changed
 * since this waiter read it", per waiter; plus the kernel's sleep queue */
byte fpend[NPIDS];     /* the wait set whose word this waiter read */
bool fchg[NPIDS];      /* the word changed since */
byte fsl[NPIDS];       /* asleep in the kernel on this wait set */
byte nsl[3];

/* ------------------------------------------------- budgets and checks */
byte spurious = SPURIOUS;
byte tmo = TMO;
byte kills = KILLS;
byte killed;
bool owner_died;         /* SHARED: the robust mutex's owner died */
byte npushed[NPROD + 1]; /* items producer p got in (its first npushed) */
byte nextk[NPROD + 1];   /* the next item of producer p a pop must see */
byte pdone;              /* producers finished */
byte finished;           /* workers finished (or killed) */
bool done;               /* init checked the end state */

/* the watchdog's "lost wake-up": a blocked waiter whose predicate holds */
#define WANTS(p) ((p) <= NPROD -> (qn < CAP || closed) : (qn > 0 || closed))
#define BLOCKED(p) (cvb[p] != 0 || fsl[p] != 0)
#define STRANDED_(p) (BLOCKED(p) && WANTS(p))
#define STRANDED (STRANDED_(1) || STRANDED_(2) || STRANDED_(3) || STRANDED_(4))

ltl live { <> done }

/*
 * crew__mutex_lock / crew__mutex_lock_robust. Shared: when the last owner
 * died holding the lock, the next locker gets CREW__OWNER_DIED and runs
 * queue.c recover(): wake everyone (the dead may have owed a wake-up).
 * Every path that locks gets it: lock(), the relock in
 * crew__waitset_wait (-> wait_on), spin_unlocked.
 */
inline lock()
{
  atomic {
    mutex == 0 -> mutex = _pid + 1;
#ifdef SHARED
    if
    :: owner_died ->
      owner_died = false;
      printf("%d: lock owner died: recover() wakes everyone\n", _pid);
      wake_all(NE);
      wake_all(PUSH_WS)
    :: else -> skip
    fi
#endif
  }
}

/* crew__mutex_unlock */
inline unlock()
{
  assert(mutex == _pid + 1);
  mutex = 0
}

/* pthread_cond_signal: wakes one of the blocked threads, if any (which one
 * is the model checker's choice). More than one = spurious wake-ups. */
inline cv_signal(ws)
{
  if
  :: ncv[ws] > 0 ->
    if
    :: cvb[1] == ws -> cvb[1] = 0; printf("  signal ws %d: wakes %d\n", ws, 1)
    :: cvb[2] == ws -> cvb[2] = 0; printf("  signal ws %d: wakes %d\n", ws, 2)
    :: cvb[3] == ws -> cvb[3] = 0; printf("  signal ws %d: wakes %d\n", ws, 3)
    :: cvb[4] == ws -> cvb[4] = 0; printf("  signal ws %d: wakes %d\n", ws, 4)
    fi;
    ncv[ws]--
  :: else -> skip
  fi
}

/* the futex word's bump (atomic_fetch_add under the lock) */
inline fx_bump(ws)
{
  fchg[1] = fchg[1] || fpend[1] == ws;
  fchg[2] = fchg[2] || fpend[2] == ws;
  fchg[3] = fchg[3] || fpend[3] == ws;
  fchg[4] = fchg[4] || fpend[4] == ws
}

/* FUTEX_WAKE of one sleeper, if any (the kernel's choice) */
inline fx_wake1(ws)
{
  if
  :: nsl[ws] > 0 ->
    if
    :: fsl[1] == ws -> fsl[1] = 0; printf("  FUTEX_WAKE ws %d: wakes %d\n", ws, 1)
    :: fsl[2] == ws -> fsl[2] = 0; printf("  FUTEX_WAKE ws %d: wakes %d\n", ws, 2)
    :: fsl[3] == ws -> fsl[3] = 0; printf("  FUTEX_WAKE ws %d: wakes %d\n", ws, 3)
    :: fsl[4] == ws -> fsl[4] = 0; printf("  FUTEX_WAKE ws %d: wakes %d\n", ws, 4)
    fi;
    nsl[ws]--
  :: else -> skip
  fi
}

/* queue.c wake() -> sync.c crew__waitset_wake(ws, min(n, waiters)) */
inline wake(ws, n, waiters)
{
  k = MIN(n, waiters);
#ifdef SHARED
  if
  :: k > 0 -> fx_bump(ws)
  :: else -> skip
  fi;
  do
  :: k > 0 -> fx_wake1(ws); k--
  :: else -> break
  od
#else
  k = MIN(k, waiters - sig[ws]); /* only sleepers nobody signalled */
  sig[ws] = sig[ws] + k;
  do
  :: k > 0 -> cv_signal(ws); k--
  :: else -> break
  od
#endif
}

/* sync.c crew__waitset_wake_all */
inline wake_all(ws)
{
#ifdef SHARED
  fx_bump(ws);
  fsl[1] = (fsl[1] == ws -> 0 : fsl[1]);
  fsl[2] = (fsl[2] == ws -> 0 : fsl[2]);
  fsl[3] = (fsl[3] == ws -> 0 : fsl[3]);
  fsl[4] = (fsl[4] == ws -> 0 : fsl[4]);
  nsl[ws] = 0
#else
  cvb[1] = (cvb[1] == ws -> 0 : cvb[1]);
  cvb[2] = (cvb[2] == ws -> 0 : cvb[2]);
  cvb[3] = (cvb[3] == ws -> 0 : cvb[3]);
  cvb[4] = (cvb[4] == ws -> 0 : cvb[4]);
  ncv[ws] = 0
#endif
}

/*
 * wait_on() + crew__waitset_wait(), first half, inside the caller's
 * atomic step (lock held): count the waiter, then either block on the
 * condvar and release the mutex (pthread_cond_wait does both at once), or
 * (shared) read the futex word and unlock.
 */
inline wait_begin(ws, waiters)
{
  mygen = gen;
  waiters++;
  printf("%d waits on ws %d (1 not_empty, 2 not_full), count %d\n",
         _pid, ws, waiters);
  rc = OK;
#ifdef SHARED
  fpend[_pid] = ws;
  fchg[_pid] = false;
#else
  cvb[_pid] = ws;
  ncv[ws]++;
#endif
  unlock()
}

/* the second half, without the lock: sleep until woken, spuriously woken,
 * timed out, (shared) the slice ends, or (shared) killed */
inline wait_end(ws)
{
#ifdef SHARED
  slept = false;
  atomic {               /* FUTEX_WAIT: the kernel compares and queues */
    if
    :: fchg[_pid] -> skip /* the word moved: return at once */
    :: else -> fsl[_pid] = ws; nsl[ws]++; slept = true
    fi;
    fpend[_pid] = 0;
    fchg[_pid] = false
  }
  if
  :: slept ->
    if
    :: fsl[_pid] == 0 ->   /* FUTEX_WAKE chose it, or its slice ended */
      if
      :: atomic { KILLABLE && kills > 0 ->
          kills--; killed++; printf("%d killed after its wake-up\n", _pid) };
        goto died                 /* killed just after being woken */
      :: true -> skip
      fi
    :: atomic { fsl[_pid] == ws && spurious > 0 ->
        spurious--; fsl[_pid] = 0; nsl[ws]--;
        printf("%d wakes spuriously\n", _pid) }
    :: atomic { fsl[_pid] == ws && tmo > 0 ->
        tmo--; fsl[_pid] = 0; nsl[ws]--; rc = ETIMEDOUT;
        printf("%d times out\n", _pid) }
    :: atomic { KILLABLE && fsl[_pid] == ws && kills > 0 ->
        kills--; killed++; fsl[_pid] = 0; nsl[ws]--;
        printf("%d killed asleep\n", _pid) };
      goto died
    fi
  :: else -> skip
  fi;
  slept = false
#else
  if
  :: cvb[_pid] == 0 ->           /* signalled or broadcast */
    if
    :: true -> skip
    :: atomic { tmo > 0 -> tmo--; rc = ETIMEDOUT; /* POSIX allows it */
        printf("%d signalled, but times out\n", _pid) }
    fi
  :: atomic { cvb[_pid] == ws && spurious > 0 ->
      spurious--; cvb[_pid] = 0; ncv[ws]--;
      printf("%d wakes spuriously\n", _pid) }
  :: atomic { cvb[_pid] == ws && tmo > 0 ->
      tmo--; cvb[_pid] = 0; ncv[ws]--; rc = ETIMEDOUT;
      printf("%d times out\n", _pid) }
  fi
#endif
}

/* the wait ended and relocked: uncount unless reset (shared), and
 * (private) take one signal off the count, if any is left */
inline wait_done(ws, waiters)
{
  lock();
  atomic {
    if
    :: gen == mygen -> waiters--
    :: else -> skip
    fi;
#if !defined(SHARED) && !defined(BUG_SIG_KEEP)
    if
    :: sig[ws] > 0 -> sig[ws]--
    :: else -> skip
    fi;
#endif
    mygen = 0
  }
}

/* spin_unlocked(): drop the lock, spin until may_proceed() or the time
 * bound (either may end it at any moment), take the lock again */
inline spin_end(side)
{
  spinning[side] = false;
  lock()
}

/* crew_queue_close */
inline close_queue()
{
  lock();
  atomic {
    closed = true;
    printf("%d closes the queue\n", _pid);
    wake_all(NE);
    wake_all(PUSH_WS);
    unlock()
  }
}

/* ----------------------------------------------------------- producers */
proctype producer()
{
  byte p = _pid;
  byte kk;   /* items of this producer in so far */
  byte cnt;  /* this call's count */
  byte dn;   /* push_until's done */
  byte rc;
  byte n, i, k, mygen, act;
  bool spun, slept, was_empty;

  do
  :: kk < NOPS ->
    cnt = MIN(PBATCH, NOPS - kk);
    /* push_until(q, items, cnt, &pushed, d) */
    dn = 0;
    rc = OK;
    spun = false;
    lock();
    do
    :: atomic {
        act = A_EXIT;
        if
        :: dn == cnt -> skip
        :: else ->
          if
          :: closed -> rc = ECLOSED
          :: else ->
            if
            :: qn < CAP ->                      /* room > 0 */
              n = MIN(CAP - qn, cnt - dn);
#ifdef BUG_WAS_EMPTY
              was_empty = (qn == 0);
#endif
              i = 0;
              do                                 /* ring_put */
              :: i < n ->
                assert(qn < CAP);
                ring[(qh + qn) % CAP] = ID(p, kk + dn + i);
                qn++;
                printf("%d put item %d, queued %d, pop_waiters %d\n",
                       _pid, ID(p, kk + dn + i), qn, pop_waiters);
                i++
              :: else -> break
              od;
              dn = dn + n;
              npushed[p] = kk + dn;
              assert(qn <= CAP);
#ifdef BUG_WAS_EMPTY
              if
              :: was_empty -> wake(NE, 1, pop_waiters)
              :: else -> skip
              fi;
#elif defined(SPINNING) && !defined(SHARED)
              /* queue.c wake(): one fewer, once per spin, while a popper
               * spins: it looks again under the lock once its spin ends */
              if
#ifdef BUG_SPIN_EVERY
              :: spinning[POPPER] ->
#else
              :: spinning[POPPER] && !promised ->
#endif
                promised = true;
                wake(NE, n - 1, pop_waiters)
              :: else ->
                wake(NE, n, pop_waiters)
              fi;
#else
              wake(NE, n, pop_waiters);
#endif
              act = A_AGAIN;
              n = 0; i = 0; k = 0; was_empty = false
            :: else ->                           /* full */
              if
              :: rc == ETIMEDOUT -> skip
              :: else ->
#ifdef SPINNING
                if
                :: !spun && !spinning[PUSHER] ->
                  spun = true;
                  spinning[PUSHER] = true;
                  unlock();
                  act = A_SPIN
                :: else ->
#endif
                  wait_begin(PUSH_WS, push_waiters);
                  act = A_WAIT
#ifdef SPINNING
                fi
#endif
              fi
            fi
          fi
        fi
      }
      if
      :: act == A_EXIT -> break
      :: act == A_AGAIN -> act = A_EXIT
      :: act == A_SPIN -> act = A_EXIT; spin_end(PUSHER)
      :: act == A_WAIT -> act = A_EXIT; wait_end(PUSH_WS); wait_done(PUSH_WS, push_waiters)
      fi
    od;
    unlock();
    kk = kk + dn;
    if
    :: rc == ECLOSED && dn < cnt -> break
    :: else -> skip /* a timed-out call: try again */
    fi
  :: else -> break
  od;
  atomic { pdone++; finished++ };
died:
  skip
}

/* ----------------------------------------------------------- consumers */
proctype consumer()
{
  byte got;   /* items taken so far */
  byte max;   /* this call's max */
  byte rc;
  byte n, i, k, mygen, act, id, p;
  bool spun, slept;

  do
  :: WORKLOAD != W_QUOTA || got < QUOTA ->
    max = (WORKLOAD == W_QUOTA -> MIN(CBATCH, QUOTA - got) : CBATCH);
    /* pop_until(q, items, max, &popped, d, spin_ns) */
    rc = OK;
    spun = false;
    lock();
    do
    :: atomic {
        act = A_EXIT;
        if
        :: qn > 0 ->
          n = MIN(qn, max);
          i = 0;
          do                                     /* ring_take */
          :: i < n ->
            id = ring[qh];
            assert(id != 0);
            p = (id - 1) / NOPS + 1;
            assert((id - 1) % NOPS == nextk[p]); /* once, in order */
            nextk[p]++;
            ring[qh] = 0;
            qh = (qh + 1) % CAP;
            qn--;
            printf("%d took item %d, queued %d, push_waiters %d\n",
                   _pid, id, qn, push_waiters);
            i++
          :: else -> break
          od;
          got = got + n;
          rc = OK;
#if defined(SHARED) && defined(KILL_LOCKED)
          if
          :: KILLABLE && kills > 0 -> /* killed holding the lock, after
                                      * the take, owing the wake-up */
            kills--;
            killed++;
            owner_died = true;
            mutex = 0;
            printf("%d killed holding the lock, before its wake-up\n", _pid);
            goto died
          :: true -> skip
          fi;
#endif
          wake(PUSH_WS, n, push_waiters);
          n = 0; i = 0; k = 0; id = 0; p = 0
        :: else ->
          if
          :: closed -> rc = ECLOSED
          :: else ->
            if
            :: rc == ETIMEDOUT -> skip
            :: else ->
#ifdef SPINNING
              if
              :: !spun && !spinning[POPPER] ->
                spun = true;
                spinning[POPPER] = true;
                promised = false;
                unlock();
                act = A_SPIN
              :: else ->
#endif
                wait_begin(NE, pop_waiters);
                act = A_WAIT
#ifdef SPINNING
              fi
#endif
            fi
          fi
        fi
      }
      if
      :: act == A_EXIT -> break
      :: act == A_SPIN -> act = A_EXIT; spin_end(POPPER)
      :: act == A_WAIT -> act = A_EXIT; wait_end(NE); wait_done(NE, pop_waiters)
      fi
    od;
    unlock();
    if
    :: rc == ECLOSED -> break
    :: else -> skip /* an item, or timed out: pop again */
    fi
  :: else -> break
  od;
died:
  finished++
}

/* procpool.c handle_exit -> crew__queue_forget_waiters, after a death */
proctype supervisor()
{
  byte k;
end_idle:
  killed > 0;
  lock();
  atomic {
    printf("%d: crew__queue_forget_waiters\n", _pid);
    gen++;
    pop_waiters = 0;
    push_waiters = 0;
    spinning[POPPER] = false;
    spinning[PUSHER] = false;
    wake_all(NE);
    wake_all(PUSH_WS);
    unlock()
  }
}

/*
 * The 100 ms slice of crew__waitset_wait (shared): when nothing else can
 * move, time passes and every sleeper's slice ends (a slice that ends
 * earlier is a spurious wake-up). Waking them all at once, not one at a
 * time, keeps the model checker from starving one sleeper forever while
 * it lets another wake and sleep again, which no real clock does.
 */
proctype clock()
{
end_clock:
  do
  :: atomic { timeout && nsl[NE] + nsl[NF] > 0 ->
      fsl[1] = 0; fsl[2] = 0; fsl[3] = 0; fsl[4] = 0;
      nsl[NE] = 0; nsl[NF] = 0;
      printf("time passes: every 100 ms slice ends\n") }
  od
}

/* everyone stuck: no blocked waiter may be one whose predicate holds */
proctype watchdog()
{
end_watch:
  timeout ->
  atomic {
    if
    :: STRANDED -> printf("LOST WAKE-UP: all stuck, a blocked waiter's predicate holds (queued %d, closed %d)\n", qn, closed)
    :: else -> skip
    fi;
    assert(!STRANDED)
  }
}

init
{
  byte p;
  atomic {
    run producer();   /* pids 1, 2 */
    run producer();
    run consumer();   /* pids 3, 4 */
    run consumer();
#if KILLS > 0 && !defined(NO_SUPERVISOR)
    run supervisor();
#endif
#if !defined(SHARED) || defined(NO_SLICE)
    run watchdog();
#else
    run clock();
#endif
  }
#if WORKLOAD == W_CLOSE_ANY
  close_queue();
#elif WORKLOAD == W_CLOSE_AFTER
  pdone == NPROD;
  close_queue();
#endif
  finished == NW;
  atomic {
    p = 1;
    do
    :: p <= NPROD ->
      assert(nextk[p] == npushed[p]); /* every item pushed was taken */
      assert(WORKLOAD != W_QUOTA || npushed[p] == NOPS);
      p++
    :: else -> break
    od;
    assert(qn == 0);
    done = true
  }
}
