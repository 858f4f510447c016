-- wrk's own totals at the end of a run, exact (its text report rounds bytes to three digits):
-- every byte read, partial responses included, the completed responses and the run's duration.
-- Only `done` is defined, so wrk keeps its static request and parses no response in Lua.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrk-summary bytes=%d requests=%d duration_us=%d errors=%d\n",
    summary.bytes, summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout))
end
