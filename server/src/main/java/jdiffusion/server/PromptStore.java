package jdiffusion.server;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;

/**
 * The queue and the history in one SQLite table, so that an accepted prompt survives a crash: a row is written (and
 * synced) before /prompt answers, moves from {@code pending} to {@code running} when the worker takes it and to
 * {@code done} with its outputs and status when it ends. After a restart, rows left {@code running} go back to
 * {@code pending} and run again, with a note in their status messages; a prompt that was running during
 * {@value #MAX_RESTARTS} crashes is marked failed instead, so that a prompt that kills the server cannot loop. A
 * prompt stopped on purpose (/interrupt, or a server shutdown) is recorded as such at once ({@link #markStopped}), so
 * a restart files it as interrupted instead of running it again. One server at a time may use a database: an
 * exclusive lock on {@code FILE.lock} is held while the store is open, and a second server gets a clear error.
 */
public final class PromptStore implements AutoCloseable {
    /** How many server restarts a prompt may live through while running before it is given up. */
    public static final int MAX_RESTARTS = 3;

    /** One queued or finished prompt. outputs and status are null until it is done. */
    public record Entry(String promptId, long number, JsonNode prompt, JsonNode extraData, JsonNode goodOutputs,
            String clientId, String state, int restarts, JsonNode outputs, JsonNode status) {

        /** ComfyUI's queue item: [number, prompt_id, prompt, extra_data, outputs_to_execute]. */
        public ArrayNode queueItem() {
            ArrayNode a = JSON.createArrayNode();
            a.add(number).add(promptId).add(prompt).add(extraData).add(goodOutputs);
            return a;
        }

        /** ComfyUI's history entry: {prompt: queue item, outputs, status, meta}. */
        public ObjectNode historyItem() {
            ObjectNode o = JSON.createObjectNode();
            o.set("prompt", queueItem());
            o.set("outputs", outputs == null ? JSON.createObjectNode() : outputs);
            o.set("status", status == null ? JSON.createObjectNode() : status);
            o.putObject("meta");
            return o;
        }
    }

    static final ObjectMapper JSON = new ObjectMapper();

    private final Connection db;
    private final java.nio.channels.FileChannel lockChannel;
    private long counter;

    private PromptStore(Connection db, java.nio.channels.FileChannel lockChannel) throws SQLException {
        this.db = db;
        this.lockChannel = lockChannel;
        try (Statement s = db.createStatement()) {
            s.execute("PRAGMA journal_mode=WAL");
            s.execute("PRAGMA synchronous=FULL");
            s.execute("""
                    CREATE TABLE IF NOT EXISTS prompts (
                      prompt_id TEXT PRIMARY KEY,
                      number INTEGER NOT NULL,
                      prompt TEXT NOT NULL,
                      extra_data TEXT NOT NULL,
                      good_outputs TEXT NOT NULL,
                      client_id TEXT,
                      state TEXT NOT NULL,
                      restarts INTEGER NOT NULL DEFAULT 0,
                      outputs TEXT,
                      status TEXT,
                      finished_at INTEGER)""");
            boolean hasStop = false;
            try (ResultSet r = s.executeQuery("PRAGMA table_info(prompts)")) {
                while (r.next()) {
                    hasStop |= "stop_reason".equals(r.getString("name"));
                }
            }
            if (!hasStop) {
                s.execute("ALTER TABLE prompts ADD COLUMN stop_reason TEXT"); // databases from before the column
            }
            try (ResultSet r = s.executeQuery("SELECT COALESCE(MAX(ABS(number)), 0) FROM prompts")) {
                counter = r.next() ? r.getLong(1) + 1 : 1;
            }
        }
    }

    /**
     * Opens (or creates) the database file, taking the exclusive lock on {@code FILE.lock} first.
     *
     * @throws IllegalStateException when another server (this process or another) holds the lock
     */
    public static PromptStore open(Path file) {
        java.nio.channels.FileChannel lock = lock(file);
        try {
            return new PromptStore(DriverManager.getConnection("jdbc:sqlite:" + file.toAbsolutePath()), lock);
        } catch (SQLException e) {
            closeQuietly(lock);
            throw new IllegalStateException("cannot open the queue database " + file + ": " + e.getMessage(), e);
        }
    }

    /** The lock file beside the database. */
    static Path lockFile(Path db) {
        return db.toAbsolutePath().resolveSibling(db.getFileName() + ".lock");
    }

    private static java.nio.channels.FileChannel lock(Path file) {
        Path lockFile = lockFile(file);
        java.nio.channels.FileChannel ch;
        try {
            ch = java.nio.channels.FileChannel.open(lockFile, java.nio.file.StandardOpenOption.CREATE,
                    java.nio.file.StandardOpenOption.WRITE);
        } catch (java.io.IOException e) {
            throw new IllegalStateException("cannot open the queue lock " + lockFile + ": " + e.getMessage(), e);
        }
        java.nio.channels.FileLock l;
        try {
            l = ch.tryLock();
        } catch (java.nio.channels.OverlappingFileLockException e) {
            l = null; // held by this process already
        } catch (java.io.IOException e) {
            closeQuietly(ch);
            throw new IllegalStateException("cannot lock the queue " + lockFile + ": " + e.getMessage(), e);
        }
        if (l == null) {
            closeQuietly(ch);
            throw new IllegalStateException("another jdiffusion server is already running on the queue in "
                    + file.toAbsolutePath().getParent() + " (" + lockFile.getFileName()
                    + " is locked); stop it first, or give this one another --base-dir");
        }
        return ch;
    }

    private static void closeQuietly(java.nio.channels.FileChannel ch) {
        try {
            ch.close();
        } catch (java.io.IOException ignored) {
            // releasing: nothing else to do
        }
    }

    /**
     * Records, durably and at once, that a running prompt is being stopped on purpose (an interrupt, a shutdown):
     * should the process die before the prompt ends, a restart files it as interrupted instead of running it again.
     */
    public synchronized void markStopped(String promptId, String reason) {
        try (PreparedStatement p = db.prepareStatement("UPDATE prompts SET stop_reason = ? WHERE prompt_id = ?"
                + " AND state = 'running'")) {
            p.setString(1, reason);
            p.setString(2, promptId);
            p.executeUpdate();
        } catch (SQLException e) {
            throw new IllegalStateException("cannot record the stop of " + promptId + ": " + e.getMessage(), e);
        }
    }

    /**
     * After a restart: prompts left running go back to the front of the queue (or fail after too many restarts).
     *
     * @return the prompt ids that will run again
     */
    public synchronized List<String> recover() {
        List<String> again = new ArrayList<>();
        for (Entry e : select("state = 'running'", "number")) {
            String stopped = stopReason(e.promptId());
            if (stopped != null) {
                // stopped on purpose: filed as interrupted (as ComfyUI's history shows an interrupted prompt)
                ArrayNode m = message("execution_interrupted", e.promptId(), null);
                ((ObjectNode) m.get(1)).put("reason", stopped);
                finish(e.promptId(), JSON.createObjectNode(), status("error", false, List.of(m)));
                continue;
            }
            if (e.restarts() + 1 >= MAX_RESTARTS) {
                ObjectNode status = status("error", false, List.of(message("execution_error", e.promptId(),
                        "the server stopped while this prompt ran, " + MAX_RESTARTS + " times; not retried")));
                finish(e.promptId(), JSON.createObjectNode(), status);
            } else {
                update("UPDATE prompts SET state = 'pending', restarts = restarts + 1 WHERE prompt_id = ?",
                        e.promptId());
                again.add(e.promptId());
            }
        }
        return again;
    }

    /** Adds a pending prompt; front puts it before the others (ComfyUI's negative number). */
    public synchronized Entry enqueue(String promptId, JsonNode prompt, JsonNode extraData, JsonNode goodOutputs,
            String clientId, boolean front) {
        long number = front ? -counter : counter;
        counter++;
        try (PreparedStatement p = db.prepareStatement("INSERT INTO prompts (prompt_id, number, prompt, extra_data,"
                + " good_outputs, client_id, state) VALUES (?, ?, ?, ?, ?, ?, 'pending')")) {
            p.setString(1, promptId);
            p.setLong(2, number);
            p.setString(3, prompt.toString());
            p.setString(4, extraData.toString());
            p.setString(5, goodOutputs.toString());
            p.setString(6, clientId);
            p.executeUpdate();
        } catch (SQLException e) {
            throw new IllegalStateException("cannot store prompt " + promptId + ": " + e.getMessage(), e);
        }
        return get(promptId);
    }

    private String stopReason(String promptId) {
        try (PreparedStatement p = db.prepareStatement("SELECT stop_reason FROM prompts WHERE prompt_id = ?")) {
            p.setString(1, promptId);
            try (ResultSet r = p.executeQuery()) {
                return r.next() ? r.getString(1) : null;
            }
        } catch (SQLException e) {
            throw new IllegalStateException("queue database: " + e.getMessage(), e);
        }
    }

    public synchronized boolean exists(String promptId) {
        return get(promptId) != null;
    }

    /** Takes the first pending prompt and marks it running; null when none. */
    public synchronized Entry takeNext() {
        List<Entry> next = select("state = 'pending'", "number LIMIT 1");
        if (next.isEmpty()) {
            return null;
        }
        update("UPDATE prompts SET state = 'running' WHERE prompt_id = ?", next.getFirst().promptId());
        return get(next.getFirst().promptId());
    }

    /** Moves a prompt to the history with its ui outputs and status. */
    public synchronized void finish(String promptId, JsonNode outputs, JsonNode status) {
        try (PreparedStatement p = db.prepareStatement("UPDATE prompts SET state = 'done', outputs = ?, status = ?,"
                + " finished_at = ? WHERE prompt_id = ?")) {
            p.setString(1, outputs.toString());
            p.setString(2, status.toString());
            p.setLong(3, System.currentTimeMillis());
            p.setString(4, promptId);
            p.executeUpdate();
        } catch (SQLException e) {
            throw new IllegalStateException("cannot store the result of " + promptId + ": " + e.getMessage(), e);
        }
    }

    public synchronized Entry get(String promptId) {
        List<Entry> l = select("prompt_id = ?", "number", promptId);
        return l.isEmpty() ? null : l.getFirst();
    }

    public synchronized List<Entry> running() {
        return select("state = 'running'", "number");
    }

    public synchronized List<Entry> pending() {
        return select("state = 'pending'", "number");
    }

    public synchronized int remaining() {
        return running().size() + pending().size();
    }

    /** Finished prompts, oldest first; the last maxItems when maxItems > 0. */
    public synchronized List<Entry> history(int maxItems) {
        List<Entry> all = select("state = 'done'", "finished_at, number");
        return maxItems > 0 && all.size() > maxItems ? all.subList(all.size() - maxItems, all.size()) : all;
    }

    /** Removes pending prompts (not the running one); all when ids is null. */
    public synchronized void deletePending(List<String> ids) {
        deleteWhere("pending", ids);
    }

    /** Removes history entries; all when ids is null. */
    public synchronized void deleteHistory(List<String> ids) {
        deleteWhere("done", ids);
    }

    private void deleteWhere(String state, List<String> ids) {
        if (ids == null) {
            update("DELETE FROM prompts WHERE state = ?", state);
            return;
        }
        for (String id : ids) {
            try (PreparedStatement p = db.prepareStatement("DELETE FROM prompts WHERE state = ? AND prompt_id = ?")) {
                p.setString(1, state);
                p.setString(2, id);
                p.executeUpdate();
            } catch (SQLException e) {
                throw new IllegalStateException("cannot delete " + id + ": " + e.getMessage(), e);
            }
        }
    }

    private void update(String sql, String arg) {
        try (PreparedStatement p = db.prepareStatement(sql)) {
            p.setString(1, arg);
            p.executeUpdate();
        } catch (SQLException e) {
            throw new IllegalStateException("queue database: " + e.getMessage(), e);
        }
    }

    /** Rows matching a fixed where clause, with its ? parameters bound (never concatenated). */
    private List<Entry> select(String where, String order, String... args) {
        List<Entry> out = new ArrayList<>();
        String sql = "SELECT prompt_id, number, prompt, extra_data, good_outputs, client_id, state, restarts, outputs,"
                + " status FROM prompts WHERE " + where + " ORDER BY " + order;
        try (PreparedStatement s = db.prepareStatement(sql)) {
            for (int i = 0; i < args.length; i++) {
                s.setString(i + 1, args[i]);
            }
            ResultSet r = s.executeQuery();
            while (r.next()) {
                out.add(new Entry(r.getString(1), r.getLong(2), tree(r.getString(3)), tree(r.getString(4)),
                        tree(r.getString(5)), r.getString(6), r.getString(7), r.getInt(8), tree(r.getString(9)),
                        tree(r.getString(10))));
            }
        } catch (SQLException e) {
            throw new IllegalStateException("queue database: " + e.getMessage(), e);
        }
        return out;
    }

    private static JsonNode tree(String s) {
        if (s == null) {
            return null;
        }
        try {
            return JSON.readTree(s);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("queue database holds bad JSON: " + e.getOriginalMessage());
        }
    }

    /** ComfyUI's history status: {status_str, completed, messages: [[event, data], ...]}. */
    static ObjectNode status(String statusStr, boolean completed, List<ArrayNode> messages) {
        ObjectNode s = JSON.createObjectNode();
        s.put("status_str", statusStr);
        s.put("completed", completed);
        ArrayNode m = s.putArray("messages");
        messages.forEach(m::add);
        return s;
    }

    static ArrayNode message(String event, String promptId, String text) {
        ArrayNode a = JSON.createArrayNode();
        a.add(event);
        ObjectNode d = a.addObject();
        d.put("prompt_id", promptId);
        d.put("timestamp", System.currentTimeMillis());
        if (text != null) {
            d.put("exception_message", text);
        }
        return a;
    }

    @Override
    public synchronized void close() {
        try {
            db.close();
        } catch (SQLException e) {
            // closing at shutdown: nothing left to save
        }
        closeQuietly(lockChannel); // releases the lock
    }
}
