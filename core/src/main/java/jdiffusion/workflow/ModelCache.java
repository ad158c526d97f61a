package jdiffusion.workflow;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Loaded models shared between prompts, least recently used first out when the estimated size passes the budget.
 * The entry just loaded or asked for is never evicted by its own arrival, so a single model larger than the budget
 * still runs (alone).
 */
public final class ModelCache implements AutoCloseable {
    /** A loaded model, its estimated resident size, and what to close when it leaves. */
    public record Entry<T>(T value, long bytes, List<AutoCloseable> resources) {
    }

    /** Loads one entry; a failure is a one-line {@link WorkflowException}. */
    @FunctionalInterface
    public interface Loader<T> {
        Entry<T> load();
    }

    private final long budgetBytes;
    private final LinkedHashMap<Object, Entry<?>> entries = new LinkedHashMap<>(16, 0.75f, true);
    private long loads;

    public ModelCache(long budgetBytes) {
        this.budgetBytes = budgetBytes;
    }

    /** The value for key, loading it on a miss. */
    @SuppressWarnings("unchecked")
    public synchronized <T> T get(Object key, Loader<T> loader) {
        Entry<?> e = entries.get(key);
        if (e == null) {
            e = loader.load();
            loads++;
            entries.put(key, e);
            evictOver(key);
        }
        return (T) e.value();
    }

    /** How many loads happened (misses); a test sees whether a prompt reloaded a model. */
    public synchronized long loads() {
        return loads;
    }

    public synchronized long usedBytes() {
        return entries.values().stream().mapToLong(Entry::bytes).sum();
    }

    public synchronized int size() {
        return entries.size();
    }

    public long budgetBytes() {
        return budgetBytes;
    }

    /** Drops everything (the server's /free). */
    public synchronized void clear() {
        for (Entry<?> e : entries.values()) {
            closeAll(e.resources());
        }
        entries.clear();
    }

    private void evictOver(Object keep) {
        long used = usedBytes();
        Iterator<Map.Entry<Object, Entry<?>>> it = entries.entrySet().iterator();
        while (used > budgetBytes && it.hasNext()) {
            Map.Entry<Object, Entry<?>> oldest = it.next();
            if (oldest.getKey().equals(keep)) {
                continue;
            }
            used -= oldest.getValue().bytes();
            closeAll(oldest.getValue().resources());
            it.remove();
        }
    }

    static void closeAll(List<AutoCloseable> resources) {
        for (AutoCloseable c : new ArrayList<>(resources).reversed()) {
            try {
                c.close();
            } catch (Exception ignored) {
                // unmapping a file cannot fail in a way a workflow could act on
            }
        }
    }

    @Override
    public void close() {
        clear();
    }
}
