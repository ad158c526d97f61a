package jdiffusion.server;

import io.javalin.http.Context;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Set;

/**
 * Checks made before any handler: the body size (413 before the body is read) and, when the server has a token,
 * {@code Authorization: Bearer T} (401 when missing or wrong). A browser cannot put a header on a websocket, an
 * {@code <img src>} or the page itself, so there (and only there) {@code ?token=T} is accepted as well, and then
 * remembered in an HttpOnly, SameSite=Strict cookie for the page's own files.
 */
final class Security {
    private static final Set<String> QUERY_TOKEN_PATHS = Set.of("/ws", "/view", "/api/view", "/", "/index.html",
            "/app.js", "/style.css", "/favicon.ico");

    /** Set from a valid ?token= on the page; accepted only where ?token= is (never on the API: no CSRF). */
    static final String COOKIE = "jdiffusion_token";

    private Security() {
    }

    static void check(Context ctx, ServerConfig config) {
        long length = ctx.contentLength();
        if (length > config.maxBodyBytes()) {
            throw ApiError.status(413, "request body of " + length + " bytes is over this server's limit of "
                    + config.maxBodyBytes());
        }
        String token = config.authToken();
        if (token == null || token.isEmpty()) {
            return;
        }
        String header = ctx.header("Authorization");
        String given = null;
        if (header != null && header.startsWith("Bearer ")) {
            given = header.substring(7).trim();
        } else if (QUERY_TOKEN_PATHS.contains(ctx.path())) {
            given = ctx.queryParam("token");
            if (given == null) {
                given = ctx.cookie(COOKIE);
            } else if (equal(given, token)) {
                // the page's own files (style.css, app.js) and images are fetched without the query: remember it
                ctx.header("Set-Cookie", COOKIE + "=" + given + "; Path=/; HttpOnly; SameSite=Strict");
            }
        }
        if (given == null) {
            throw ApiError.status(401, "this server needs a token: send Authorization: Bearer <token>");
        }
        if (!equal(given, token)) {
            throw ApiError.status(401, "wrong token");
        }
    }

    private static boolean equal(String given, String token) {
        return MessageDigest.isEqual(given.getBytes(StandardCharsets.UTF_8), token.getBytes(StandardCharsets.UTF_8));
    }
}
