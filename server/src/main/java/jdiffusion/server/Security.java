package jdiffusion.server;

import io.javalin.http.Context;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.List;
import java.util.Set;

/**
 * Checks made before any handler: the body size (413 before the body is read) and, when the server has a token,
 * {@code Authorization: Bearer T} (401 when missing or wrong). A browser cannot put a header on a websocket, an
 * {@code <img src>} or the page itself, so there (and only there) {@code ?token=T} is accepted as well, and then
 * remembered in an HttpOnly, SameSite=Strict cookie. A front end that knows nothing of the token (ComfyUI's own,
 * on {@code --front-end-root}) fetches its assets and calls the API with that cookie alone, so the cookie is taken
 * on every path, but only from the server's own pages: the browser's {@code Sec-Fetch-Site} must say
 * {@code same-origin} (or {@code none}: the user opened the address), or, from a browser that does not send it, an
 * {@code Origin} must be this server's. A page of another site or another port (same-site for the cookie) cannot
 * use it: the API stays closed to cross-site requests. The other front end's own files below its root (its
 * scripts, styles, fonts, the web manifest a browser fetches without cookies) are public, as its build is; its
 * index page is not, so that a visit without the token is told so.
 */
final class Security {
    private static final Set<String> QUERY_TOKEN_PATHS = Set.of("/ws", "/view", "/api/view", "/", "/index.html",
            "/app.js", "/style.css", "/favicon.ico");

    /** Set from a valid ?token= on the page; accepted only where ?token= is (never on the API: no CSRF). */
    static final String COOKIE = "jdiffusion_token";

    private Security() {
    }

    /** Paths that are the API's, never a front end's public file. */
    private static final List<String> API_PREFIXES = List.of("/api/", "/ws", "/view",
            "/userdata", "/internal/", "/sdapi/", "/v1/", "/v2/");

    static void check(Context ctx, ServerConfig config) {
        check(ctx, config, null);
    }

    /** {@link #check(Context, ServerConfig)}, with the files below frontEndRoot (when not null) public. */
    static void check(Context ctx, ServerConfig config, Path frontEndRoot) {
        long length = ctx.contentLength();
        if (length > config.maxBodyBytes()) {
            throw ApiError.status(413, "request body of " + length + " bytes is over this server's limit of "
                    + config.maxBodyBytes());
        }
        String token = config.authToken();
        if (token == null || token.isEmpty()) {
            return;
        }
        if (publicFile(ctx, frontEndRoot)) {
            return;
        }
        String header = ctx.header("Authorization");
        String given = null;
        if (header != null && header.startsWith("Bearer ")) {
            given = header.substring(7).trim();
        } else {
            given = QUERY_TOKEN_PATHS.contains(ctx.path()) ? ctx.queryParam("token") : null;
            if (given != null && equal(given, token)) {
                // the page's own files, images and API calls come without the query: remember it
                ctx.header("Set-Cookie", COOKIE + "=" + given + "; Path=/; HttpOnly; SameSite=Strict");
            } else if (given == null && fromOwnPage(ctx)) {
                given = ctx.cookie(COOKIE);
            }
        }
        if (given == null) {
            throw ApiError.status(401, "this server needs a token: send Authorization: Bearer <token>");
        }
        if (!equal(given, token)) {
            throw ApiError.status(401, "wrong token");
        }
    }

    /** A GET / HEAD of a regular file (with an extension) below the front end's root, other than its index page. */
    static boolean publicFile(Context ctx, Path root) {
        String method = ctx.method().name();
        String path = ctx.path();
        if (root == null || !(method.equals("GET") || method.equals("HEAD")) || path.length() < 2
                || path.equals("/index.html") || path.contains("..") || path.contains("%") || path.contains("\\")
                || path.contains("//") || API_PREFIXES.stream().anyMatch(path::startsWith)
                || path.lastIndexOf('.') < path.lastIndexOf('/')) {
            return false;
        }
        Path file = root.resolve(path.substring(1)).normalize();
        return file.startsWith(root) && Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS);
    }

    /** Whether the request comes from this server's own pages (or the address bar), as the browser tells. */
    static boolean fromOwnPage(Context ctx) {
        String site = ctx.header("Sec-Fetch-Site");
        if (site != null) {
            return site.equals("same-origin") || site.equals("none");
        }
        String origin = ctx.header("Origin");
        String host = ctx.header("Host");
        return origin == null
                || (host != null && (origin.equals("http://" + host) || origin.equals("https://" + host)));
    }

    private static boolean equal(String given, String token) {
        return MessageDigest.isEqual(given.getBytes(StandardCharsets.UTF_8), token.getBytes(StandardCharsets.UTF_8));
    }
}
