package jdiffusion.server;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintStream;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The server's log: each request line, validation failure and exception goes to the console (stderr) and to a
 * ring of the last lines, which ComfyUI's {@code /internal/logs} and {@code /internal/logs/raw} serve; websocket
 * clients subscribed with {@code PATCH /internal/logs/subscribe} get each new line as a {@code logs} message.
 */
final class ServerLog {
    private static final int KEEP = 1000;

    record Line(String t, String m) {
    }

    private final ArrayDeque<Line> lines = new ArrayDeque<>();
    private final Set<String> subscribers = ConcurrentHashMap.newKeySet();
    private final Hub hub;
    private final PrintStream console;

    ServerLog(Hub hub, PrintStream console) {
        this.hub = hub;
        this.console = console;
    }

    void line(String level, String message) {
        Line l = new Line(Instant.now().toString(), level + " " + message + "\n");
        synchronized (lines) {
            lines.addLast(l);
            while (lines.size() > KEEP) {
                lines.removeFirst();
            }
        }
        if (console != null) {
            console.print("jdiffusion: " + l.m());
            console.flush();
        }
        if (!subscribers.isEmpty()) {
            ObjectNode d = PromptStore.JSON.createObjectNode();
            ObjectNode e = d.putArray("entries").addObject();
            e.put("t", l.t());
            e.put("m", l.m());
            size(d);
            for (String sid : subscribers) {
                hub.send("logs", d, sid);
            }
        }
    }

    void info(String message) {
        line("INFO", message);
    }

    /** An exception with its type, message and the first frames of its stack. */
    void error(String message, Throwable t) {
        StringBuilder b = new StringBuilder(message).append(": ").append(t);
        StackTraceElement[] st = t.getStackTrace();
        for (int i = 0; i < Math.min(5, st.length); i++) {
            b.append("\n    at ").append(st[i]);
        }
        line("ERROR", b.toString());
    }

    List<Line> lines() {
        synchronized (lines) {
            return new ArrayList<>(lines);
        }
    }

    /** ComfyUI's /internal/logs: every kept line, as one text. */
    String text() {
        StringBuilder b = new StringBuilder();
        lines().forEach(l -> b.append(l.m()));
        return b.toString();
    }

    /** ComfyUI's /internal/logs/raw: {entries: [{t, m}], size: {cols, rows}}. */
    ObjectNode raw() {
        ObjectNode o = PromptStore.JSON.createObjectNode();
        ArrayNode a = o.putArray("entries");
        for (Line l : lines()) {
            a.addObject().put("t", l.t()).put("m", l.m());
        }
        size(o);
        return o;
    }

    private static void size(ObjectNode o) {
        o.putObject("size").put("cols", 120).put("rows", 40);
    }

    void subscribe(String clientId, boolean enabled) {
        if (enabled) {
            subscribers.add(clientId);
        } else {
            subscribers.remove(clientId);
        }
    }
}
