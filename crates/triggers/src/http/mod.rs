//! HTTP triggers: routes, events, responses, CORS, rate limits.
