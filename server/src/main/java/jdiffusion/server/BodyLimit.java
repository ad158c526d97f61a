package jdiffusion.server;

import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ReadListener;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletInputStream;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletRequestWrapper;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.Part;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Collection;

/**
 * The request body limit, enforced on the bytes actually read, for every route: a declared Content-Length over the
 * limit (however large, even past 2^31) is answered 413 before anything is read; a chunked body is counted as it is
 * read and stops with 413 as soon as it passes the limit. Multipart bodies are parsed by the container under the same
 * limit; a malformed one (no boundary, garbage) is a 400 naming the reason instead of a 500. A 413 closes the
 * connection, so the container never waits for the rest of an oversized body.
 */
final class BodyLimit implements Filter {
    /** Thrown while reading a body past the limit; the server answers 413. */
    static final class TooLarge extends RuntimeException {
        TooLarge(String message) {
            super(message, null, false, false);
        }
    }

    /** Thrown when a multipart body cannot be parsed; the server answers 400. */
    static final class BadMultipart extends RuntimeException {
        BadMultipart(String message) {
            super(message, null, false, false);
        }
    }

    private final long limit;

    BodyLimit(long limit) {
        this.limit = limit;
    }

    String overMessage(String size) {
        return "request body of " + size + " is over this server's limit of " + limit + " bytes";
    }

    @Override
    public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
            throws IOException, ServletException {
        if (!(request instanceof HttpServletRequest http) || !(response instanceof HttpServletResponse out)) {
            chain.doFilter(request, response);
            return;
        }
        long declared = http.getContentLengthLong();
        if (declared == -1 && http.getHeader("Content-Length") != null) {
            declared = Long.MAX_VALUE; // not a number the container could read: too large to be honest
        }
        if (declared > limit) {
            reject(out, 413, overMessage(declared == Long.MAX_VALUE ? "'" + http.getHeader("Content-Length") + "'"
                    : declared + " bytes"));
            return;
        }
        chain.doFilter(new Limited(http), response);
    }

    /** Writes {error: message} and closes the connection (the unread body is not waited for). */
    static void reject(HttpServletResponse out, int status, String message) throws IOException {
        out.setStatus(status);
        out.setHeader("Connection", "close");
        out.setContentType("application/json");
        byte[] body = ApiError.body(message).toString().getBytes(StandardCharsets.UTF_8);
        out.setContentLength(body.length);
        out.getOutputStream().write(body);
        out.flushBuffer();
    }

    /** The request with a counted body stream and multipart errors made explicit. */
    private final class Limited extends HttpServletRequestWrapper {
        private ServletInputStream counted;

        Limited(HttpServletRequest request) {
            super(request);
        }

        @Override
        public ServletInputStream getInputStream() throws IOException {
            if (counted == null) {
                counted = new Counted(super.getInputStream());
            }
            return counted;
        }

        @Override
        public Collection<Part> getParts() throws IOException, ServletException {
            try {
                return super.getParts();
            } catch (IOException | ServletException | RuntimeException e) {
                throw multipartError(e);
            }
        }

        @Override
        public Part getPart(String name) throws IOException, ServletException {
            try {
                return super.getPart(name);
            } catch (IOException | ServletException | RuntimeException e) {
                throw multipartError(e);
            }
        }

        private RuntimeException multipartError(Exception e) {
            String m = e.getMessage() == null ? e.toString() : e.getMessage();
            for (Throwable c = e; c != null; c = c.getCause()) {
                if (c.getMessage() != null && c.getMessage().contains("exceeds max")) {
                    return new TooLarge(overMessage("more than " + limit + " bytes"));
                }
            }
            m = m.replaceAll("^([\\w.$]+(Exception|Error): )+", "").replaceFirst("^400: ", "");
            return new BadMultipart("malformed multipart body: " + m.replace('\n', ' '));
        }
    }

    /** Counts the bytes read and throws {@link TooLarge} past the limit. */
    private final class Counted extends ServletInputStream {
        private final ServletInputStream in;
        private long read;

        Counted(ServletInputStream in) {
            this.in = in;
        }

        private int count(int n) {
            if (n > 0) {
                read += n;
                if (read > limit) {
                    throw new TooLarge(overMessage("more than " + limit + " bytes"));
                }
            }
            return n;
        }

        @Override
        public int read() throws IOException {
            int b = in.read();
            if (b >= 0) {
                count(1);
            }
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            return count(in.read(b, off, len));
        }

        @Override
        public boolean isFinished() {
            return in.isFinished();
        }

        @Override
        public boolean isReady() {
            return in.isReady();
        }

        @Override
        public void setReadListener(ReadListener listener) {
            in.setReadListener(listener);
        }
    }
}
