package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class ProgressBarTest {
    @Test
    void lineShowsStepRateAndEta() {
        assertEquals("[###############...............] 10/20  2.00 it/s  ETA 5s", ProgressBar.line(10, 20, 5.0));
        assertEquals("[######........................] 1/5  4.00 s/it  ETA 16s", ProgressBar.line(1, 5, 4.0));
        assertEquals("[##############################] 3/3  1.50 it/s  ETA 0s", ProgressBar.line(3, 3, 2.0));
    }

    @Test
    void durations() {
        assertEquals("59s", ProgressBar.duration(59));
        assertEquals("2m05s", ProgressBar.duration(125));
        assertEquals("1h01m", ProgressBar.duration(3660));
    }

    @Test
    void plainLinesWhenNotATerminalAndRedrawOnOne() {
        ByteArrayOutputStream plain = new ByteArrayOutputStream();
        ProgressBar p = new ProgressBar(new PrintStream(plain, true, StandardCharsets.UTF_8), false, false);
        p.onStage("sampling");
        p.onStep(1, 2, new float[0]);
        p.onStep(2, 2, new float[0]);
        p.finish();
        String text = plain.toString(StandardCharsets.UTF_8);
        assertEquals(3, text.lines().count(), text);
        assertTrue(!text.contains("\r"), "no carriage returns in logs");

        ByteArrayOutputStream tty = new ByteArrayOutputStream();
        ProgressBar t = new ProgressBar(new PrintStream(tty, true, StandardCharsets.UTF_8), false, true);
        t.onStage("sampling");
        t.onStep(1, 2, new float[0]);
        t.onStep(2, 2, new float[0]);
        t.finish();
        String drawn = tty.toString(StandardCharsets.UTF_8);
        assertEquals(2, drawn.chars().filter(c -> c == '\r').count(), drawn);
        assertTrue(drawn.contains("2/2"), drawn);
    }
}
