-- ISC licence; see LICENSE.
-- Every way a token can be wrong ends in 550 5.7.1 with the reason, and
-- mail for the placeholder without a token is refused too.
dofile(DIR .. "/common.lua")

local P = { "<acme@fetch.invalid>" }

run(function()
	local conn = connect()
	local cases = {
		{ { { "X-Haul-Token", TOKEN_FORGED } },
		    "X-Haul-Token rejected: bad signature" },
		{ { { "X-Haul-Token", TOKEN_STALE } },
		    "X-Haul-Token rejected: expired" },
		{ { { "X-Haul-Token", TOKEN_OTHER_KEY } },
		    "X-Haul-Token rejected: unknown key" },
		{ { { "X-Haul-Token", TOKEN_GHOST } },
		    "X-Haul-Token rejected: unknown account ghost" },
		{ { { "X-Haul-Token", "v=1; a=acme; forged=yes" } },
		    "X-Haul-Token rejected: malformed" },
		{ { { "X-Haul-Token", TOKEN_ACME },
		    { "x-haul-token", TOKEN_ACME } },
		    "X-Haul-Token rejected: 2 copies (exactly one allowed)" },
		{ { { "X-Haul-Account", "acme" } },
		    "placeholder recipient without an X-Haul-Token" },
	}
	for i, c in ipairs(cases) do
		message(conn, P, c[1], "R" .. i)
		expect_reject(conn, c[2])
	end
	mt.disconnect(conn)

	-- A genuine token is refused on any listener but the fetch one.
	conn = connect("smtpd")
	message(conn, P, { { "X-Haul-Token", TOKEN_ACME } }, "R9")
	expect_reject(conn, "X-Haul-Token rejected: not accepted on this " ..
	    "listener")
	mt.disconnect(conn)
end)
