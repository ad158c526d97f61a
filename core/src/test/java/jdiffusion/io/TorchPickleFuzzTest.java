package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import jdiffusion.Golden;
import jdiffusion.io.TorchSaveWriter.Ordered;
import jdiffusion.io.TorchSaveWriter.T;
import org.junit.jupiter.api.Test;

/**
 * Mutation fuzzing of the pickle reader (seeded, time-bounded): valid checkpoints and pickles with bit flips, byte
 * changes, truncations, insertions, deletions and splices. Every outcome must be a readable result (whose tensors
 * then read without error) or a one-line {@link ModelFormatException}: never another exception, a hang or an OOM.
 */
class TorchPickleFuzzTest {
    /** Seconds per test: 3 by default, more with -Djdiffusion.fuzzSeconds=N for a longer local run. */
    private static final long BUDGET_NANOS = Duration.ofSeconds(Long.getLong("jdiffusion.fuzzSeconds", 3)).toNanos();

    private static List<byte[]> corpus() throws Exception {
        List<byte[]> c = new ArrayList<>();
        for (String f : List.of("tiny-sd1-subset.ckpt", "tiny-sd1-subset-legacy.ckpt", "malicious.ckpt", "malicious-legacy.ckpt",
                "tiny-esrgan-realesrgan-x4.pth")) {
            c.add(Files.readAllBytes(Golden.model(f)));
        }
        float[] s = {1, 2, 3, 4, 5, 6};
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(24).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (float v : s) {
            b.putFloat(v);
        }
        Map<String, byte[]> st = new LinkedHashMap<>();
        st.put("0", b.array());
        Map<String, Object> sd = new LinkedHashMap<>();
        sd.put("t", new T("0", DType.F32, new long[] {3, 2}, new long[] {1, 3}, 0));
        sd.put("c", T.contiguous("0", DType.F32, 2, 3));
        c.add(TorchSaveWriter.zip("s", Map.of("params_ema", new Ordered(sd)), st, false));
        c.add(TorchSaveWriter.legacy(new Ordered(sd), st, Map.of("0", DType.F32)));
        return c;
    }

    @Test
    void mutatedCheckpointsGiveAResultOrAModelFormatException() throws Exception {
        List<byte[]> corpus = corpus();
        int[] counts = new int[2];
        assertTimeoutPreemptively(Duration.ofNanos(BUDGET_NANOS).multipliedBy(3).plusSeconds(60), () -> {
            Random rnd = new Random(20261207L);
            long start = System.nanoTime();
            int i = 0;
            while (System.nanoTime() - start < BUDGET_NANOS || i < 200) {
                byte[] seed = corpus.get(rnd.nextInt(corpus.size()));
                byte[] mutated = mutate(rnd, seed, corpus);
                counts[attempt(mutated, i) ? 0 : 1]++;
                i++;
            }
        });
        System.out.println("pickle fuzz: " + counts[0] + " mutated checkpoints read, " + counts[1] + " refused");
        assertTrue(counts[0] > 0 && counts[1] > 0, "both outcomes occur: " + counts[0] + " read, " + counts[1] + " refused");
    }

    /** The pickle interpreter alone, on mutated data.pkl-like pickles (no container to stop the mutation early). */
    @Test
    void mutatedPicklesGiveAValueOrAModelFormatException() throws Exception {
        List<byte[]> pickles = new ArrayList<>();
        for (byte[] f : corpus()) {
            if (f[0] == 'P') {
                Map<String, TorchCheckpoint.Entry> dir = TorchCheckpoint.zipDirectory("z", java.lang.foreign.MemorySegment.ofArray(f));
                dir.forEach((name, e) -> {
                    if (name.endsWith("data.pkl")) {
                        pickles.add(java.util.Arrays.copyOfRange(f, (int) e.offset(), (int) (e.offset() + e.size())));
                    }
                });
            }
        }
        assertTimeoutPreemptively(Duration.ofNanos(BUDGET_NANOS).multipliedBy(3).plusSeconds(60), () -> {
            Random rnd = new Random(7L);
            long start = System.nanoTime();
            int i = 0;
            while (System.nanoTime() - start < BUDGET_NANOS || i < 200) {
                byte[] m = mutate(rnd, pickles.get(rnd.nextInt(pickles.size())), pickles);
                try {
                    TorchPickle.read("fuzz", m);
                } catch (ModelFormatException e) {
                    assertOneLine(e, i);
                } catch (Throwable t) {
                    throw new AssertionError("pickle mutation " + i + " threw " + t, t);
                }
                i++;
            }
        });
    }

    private static boolean attempt(byte[] mutated, int i) {
        try (SafeTensors st = TorchCheckpoint.read("fuzz.ckpt", mutated)) {
            for (String n : st.names()) {
                TensorInfo info = st.info(n);
                if (info.numel() < (1 << 20)) {
                    st.segment(n).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
                    if (info.dtype().isFloat()) {
                        st.floats(n);
                    }
                }
            }
            return true;
        } catch (ModelFormatException e) {
            assertOneLine(e, i);
            return false;
        } catch (Throwable t) {
            throw new AssertionError("mutation " + i + " threw " + t, t);
        }
    }

    private static void assertOneLine(ModelFormatException e, int i) {
        String m = e.getMessage();
        if (m == null || m.isBlank() || m.contains("\n") || m.length() > 600) {
            throw new AssertionError("mutation " + i + ": not a one-line message: " + m);
        }
    }

    static byte[] mutate(Random rnd, byte[] seed, List<byte[]> corpus) {
        byte[] b = seed.clone();
        int rounds = 1 + rnd.nextInt(4);
        for (int r = 0; r < rounds && b.length > 0; r++) {
            switch (rnd.nextInt(7)) {
                case 0 -> { // bit flip
                    int at = rnd.nextInt(b.length);
                    b[at] ^= (byte) (1 << rnd.nextInt(8));
                }
                case 1 -> b[rnd.nextInt(b.length)] = (byte) interesting(rnd);
                case 2 -> b = java.util.Arrays.copyOf(b, rnd.nextInt(b.length)); // truncate
                case 3 -> { // delete a run
                    int at = rnd.nextInt(b.length);
                    int len = Math.min(b.length - at, 1 + rnd.nextInt(16));
                    byte[] n = new byte[b.length - len];
                    System.arraycopy(b, 0, n, 0, at);
                    System.arraycopy(b, at + len, n, at, b.length - at - len);
                    b = n;
                }
                case 4 -> { // insert random bytes
                    int at = rnd.nextInt(b.length + 1);
                    byte[] ins = new byte[1 + rnd.nextInt(8)];
                    rnd.nextBytes(ins);
                    b = splice(b, at, ins);
                }
                case 5 -> { // splice a piece of another corpus file
                    byte[] other = corpus.get(rnd.nextInt(corpus.size()));
                    int from = rnd.nextInt(other.length);
                    int len = Math.min(other.length - from, 1 + rnd.nextInt(64));
                    b = splice(b, rnd.nextInt(b.length + 1), java.util.Arrays.copyOfRange(other, from, from + len));
                }
                default -> { // a 32-bit field set to an extreme
                    if (b.length >= 4) {
                        int at = rnd.nextInt(b.length - 3);
                        int v = switch (rnd.nextInt(4)) {
                            case 0 -> -1;
                            case 1 -> Integer.MAX_VALUE;
                            case 2 -> 0;
                            default -> rnd.nextInt();
                        };
                        b[at] = (byte) v;
                        b[at + 1] = (byte) (v >> 8);
                        b[at + 2] = (byte) (v >> 16);
                        b[at + 3] = (byte) (v >> 24);
                    }
                }
            }
        }
        return b;
    }

    private static int interesting(Random rnd) {
        int[] v = {0, 1, 0x7f, 0x80, 0xff, '(', ')', '.', 'R', 'Q', 'c', 'b', 's', 'u', 't', 'h', 'q', 'X', 0x8a, 0x93, 0x95};
        return v[rnd.nextInt(v.length)];
    }

    private static byte[] splice(byte[] b, int at, byte[] ins) {
        byte[] n = new byte[b.length + ins.length];
        System.arraycopy(b, 0, n, 0, at);
        System.arraycopy(ins, 0, n, at, ins.length);
        System.arraycopy(b, at, n, at + ins.length, b.length - at);
        return n;
    }
}
