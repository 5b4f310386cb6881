-- ISC licence; see LICENSE.
-- Shared by the haul-milter miltertest scripts.  tests/integration/
-- test_milter.py runs each script with -D BIN=haul-milter CONF=haul.conf
-- SOCK=socket path and fresh tokens (TOKEN_*) signed for the test key.

-- miltertest exits 1 on an error but prints nothing: say what failed.
function run(fn)
	local good, err = pcall(fn)
	if not good then
		mt.echo("FAIL: " .. tostring(err))
		error(err)
	end
	mt.echo("PASS")
end

-- The filter is started once per script: miltertest remembers only the
-- last process it started, and stops only that one at the end.
local started = false

function start()
	if not started then
		mt.startfilter(BIN, "-f", "-c", CONF)
		started = true
	end
	local conn = mt.connect("unix:" .. SOCK, 100, 0.05)
	if conn == nil then
		error("cannot connect to " .. SOCK)
	end
	return conn
end

function check(ok, what)
	if not ok then
		error(what, 2)
	end
end

function ok(rv, what)
	if rv ~= nil then
		error(what .. ": " .. tostring(rv), 2)
	end
end

-- Connection from the fetch listener (daemon name "fetch" unless given).
function connect(daemon)
	local conn = start()
	mt.macro(conn, SMFIC_CONNECT, "{daemon_name}", daemon or "fetch")
	ok(mt.conninfo(conn, "localhost", "127.0.0.1"), "conninfo")
	return conn
end

-- One message up to its end; headers is a list of {name, value}.
function message(conn, rcpts, headers, qid)
	mt.macro(conn, SMFIC_MAIL, "i", qid or "MT0001")
	ok(mt.mailfrom(conn, "<sender@remote.test>"), "mailfrom")
	for _, r in ipairs(rcpts) do
		ok(mt.rcptto(conn, r), "rcptto " .. r)
	end
	for _, h in ipairs(headers) do
		ok(mt.header(conn, h[1], h[2]), "header " .. h[1])
	end
	ok(mt.eom(conn), "eom")
	return mt.getreply(conn)
end

function expect_reject(conn, text)
	check(mt.getreply(conn) == SMFIR_REPLYCODE, "no reply code")
	check(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
	    "haul-milter: " .. text), "reply is not 550 5.7.1 " .. text)
	-- (MT_RCPTADD takes exactly one address)
	for _, r in ipairs({ "<alice@local.test>", "<bob@local.test>" }) do
		check(not mt.eom_check(conn, MT_RCPTADD, r), r .. " added")
	end
	check(not mt.eom_check(conn, MT_HDRADD), "header added")
	check(not mt.eom_check(conn, MT_HDRDELETE), "header removed")
end
