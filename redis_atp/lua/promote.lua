-- promote.lua: delayed tasks that are due join the tail of the queue, in due order
-- (or go to a waiting worker), at most `limit` per call. Claims promote too; this is
-- housekeeping's step, for due tasks no claim has come for.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) limit (tasks per call)
-- Returns {promoted, ready}: how many were due, and the ready tasks after the call.
local n = promote(now_ms(), math.max(1, math.min(1000, tonumber(arg(1)) or 100)))
return {n, ready_count()}
