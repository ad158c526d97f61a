package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class HeapBudgetTest {
    private static final long GB = 1L << 30;
    private static final long MB = 1L << 20;

    @Test
    void softLimitSitsJustAboveTheModelsWithinFloorAndHardLimit() {
        // an SD1.5 checkpoint's packed models: 2.37 GB
        assertEquals(2370 * MB + HeapBudget.HEADROOM, HeapBudget.softLimit(2370 * MB, 18 * GB));
        // a tiny model: the floor
        assertEquals(HeapBudget.FLOOR, HeapBudget.softLimit(40 * MB, 18 * GB));
        // never above -Xmx
        assertEquals(8 * GB, HeapBudget.softLimit(9 * GB, 8 * GB));
    }
}
