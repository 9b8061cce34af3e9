"""Chaos and soak runs of a real ``redis-atp worker`` fleet.

    python -m benchmarks.chaos [--minutes M] [--tasks N] [--json OUT] [--seed S]
    python -m benchmarks.chaos --soak [--minutes M]     # M defaults to $SOAK_MINUTES or 30

Setup: a throwaway redis-server (loopback, free port, AOF with ``appendfsync always``,
so a SIGKILL loses nothing acknowledged); four task types whose handlers
(:mod:`benchmarks.chaos_handlers`) record every execution in a run file outside
Redis; two supervisors (``redis-atp worker -n 3 --heartbeat 2``, each its own process
group), one of them always connected through :mod:`benchmarks.delayproxy` (1 ms each
way). N tasks are enqueued with ``enqueue_many``: half at the start (the soak: a
tenth), the rest in bursts during the fault window, one just before each fault, so
faults meet a busy fleet as often as an idle one.

Faults, one every 1-3 s (seeded; in shuffled rounds, so every kind comes up), each
logged with its time:

* ``kill_child``: SIGKILL of a worker process, three times in four one that holds a
  task (its supervisor replaces it);
* ``kill_supervisor``: SIGKILL of a supervisor's whole group, then a new supervisor;
* ``client_kill``: 3-5 ``CLIENT KILL TYPE normal`` in a row;
* ``redis_restart``: SIGKILL of redis-server, restarted at once on the same port from its AOF;
* ``stop_child``: SIGSTOP of a worker process (chosen likewise) for 1-3 s, then SIGCONT;
* ``oom``: ``maxmemory`` just above ``used_memory`` (``noeviction``) for 1-2 s;
* ``script_flush``: ``SCRIPT FLUSH`` + ``FUNCTION FLUSH`` (what a restart of a Redis
  that keeps nothing does to scripts: the script cache and the scripts' library gone).

Then the faults stop, the fleet drains (bounded by ``--drain``), the supervisors get
SIGTERM, and these invariants are checked, each reported with its numbers:

* ``all_terminal``: the task of every acknowledged enqueue exists, FINISHED or FAILED;
* ``no_infra_failures``: no task of a normal type FAILED (``maxrestart`` is 10, so
  not even repeated crashes may fail one); ``boom`` tasks FAILED with their ValueError;
* ``executions_bounded``: run files of a task <= 1 + the recoveries in its log
  (records that put it back to ACCEPTED);
* ``reruns_explained``: every run but a task's last is followed, in the task's log,
  after its own claim and before the next run's claim, by a recovery that says the
  run is over (its process died or stopped, its heartbeat or time-out lapsed, or,
  for a run whose handler raised, its handler lost Redis) -- not by a live worker's
  uncharged put-back, which would mean a task ran twice;
* ``fencing``: one run file per fencing token; the task's final token (the hash's
  ``token`` field) is its last run's, that run ran to its end before the terminal
  record; no fenced call of a run succeeded after a later run of the task had started;
* ``counters_exact``: per type ``finished_total`` / ``failed_total`` equal the tasks
  found FINISHED / FAILED, and every log holds exactly one terminal record;
* ``nothing_owned``: after shutdown, live counters 0, no task in an owner set, no
  live worker holding a task;
* ``no_timeouts``: no task needed its type's time-out (60 s; handlers take <= 50 ms);
* ``fleet_healthy``: no supervisor or worker process exited unless killed here, no
  supervisor went 10 s without renewing heartbeats, all exited 0 on SIGTERM;
* soak only: ``keys_bounded`` (worker/owned/mailbox keys at the last sample <= 2x the
  live supervisors' slots) and ``memory_flat`` (Redis memory per stored task, last
  vs first third of the samples, <= 1.5x). Tasks are kept forever so they can be
  checked, so memory is per stored task, not per live one.

Exit code 0 only if every invariant held. Worker logs, run files and the report stay
in a temp directory (printed); it is removed after a passing run unless ``--keep``.
"""
