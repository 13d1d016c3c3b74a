return function(H) end
