package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Least-recently-used eviction within the byte budget, closing what leaves. */
class ModelCacheTest {
    @Test
    void evictsLeastRecentlyUsedOverBudget() {
        List<String> closed = new ArrayList<>();
        try (ModelCache cache = new ModelCache(100)) {
            String a = cache.get("a", () -> entry("A", 40, closed));
            cache.get("b", () -> entry("B", 40, closed));
            assertSame(a, cache.get("a", () -> entry("A2", 40, closed)), "a hit returns the loaded value");
            cache.get("c", () -> entry("C", 40, closed)); // 120 > 100: b is the least recently used
            assertEquals(List.of("B"), closed);
            assertEquals(80, cache.usedBytes());
            assertEquals(3, cache.loads());
            cache.get("big", () -> entry("BIG", 500, closed)); // larger than the budget: runs alone
            assertEquals(List.of("B", "A", "C"), closed);
            assertEquals(1, cache.size());
        }
        assertEquals(List.of("B", "A", "C", "BIG"), closed);
    }

    private static ModelCache.Entry<String> entry(String v, long bytes, List<String> closed) {
        return new ModelCache.Entry<>(v, bytes, List.of(() -> closed.add(v)));
    }
}
