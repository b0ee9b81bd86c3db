-- wrk script of bench/gateway/run: every thread sends its own share of the
-- pre-signed requests in $AUTHS (one Authorization value per line), the
-- same POST for lb alone and for the gateway, so both pay the same client
-- cost. It counts answers other than 200 and prints them at the end.
local threads = {}
local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   local nthreads = tonumber(os.getenv("THREADS") or "2")
   auths = {}
   local i = 0
   for line in io.lines(os.getenv("AUTHS")) do
      if i % nthreads == id then
         auths[#auths + 1] = line
      end
      i = i + 1
   end
   idx = 0
   non200 = 0
   wrapped = 0
   body = '{"psn_no":"1001","amount":"35.50"}'
   hdrs = {["Host"] = os.getenv("HOST"), ["Content-Type"] = "application/json"}
end

function request()
   idx = idx + 1
   if idx > #auths then
      idx = 1
      wrapped = wrapped + 1
   end
   hdrs["Authorization"] = auths[idx]
   return wrk.format("POST", "/api/outpatient/settle?psn_no=1001", hdrs, body)
end

function response(status, headers, body)
   if status ~= 200 then
      non200 = non200 + 1
   end
end

function done(summary, latency, requests)
   local bad, wraps = 0, 0
   for _, t in ipairs(threads) do
      bad = bad + t:get("non200")
      wraps = wraps + t:get("wrapped")
   end
   io.write(string.format("non200 %d wrapped %d\n", bad, wraps))
end
