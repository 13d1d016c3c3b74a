-- The version of lua-qiwi, in one place (the User-Agent and qiwi._VERSION).
return "0.1.0"
