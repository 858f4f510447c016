-- POST /notes with a small JSON body (bench/app/run).
wrk.method = "POST"
wrk.body = '{"title":"bench","body":"written by wrk"}'
wrk.headers["Content-Type"] = "application/json"
