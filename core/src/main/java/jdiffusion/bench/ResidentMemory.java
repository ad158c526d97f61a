package jdiffusion.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** This process's resident memory as Linux reports it in /proc/self/status (VmHWM: the peak, VmRSS: now). */
public final class ResidentMemory {
    private static final Path STATUS = Path.of("/proc/self/status");

    private ResidentMemory() {
    }

    /** Peak resident set size in bytes since the process started, or -1 where /proc is not available. */
    public static long peakBytes() {
        return field("VmHWM:");
    }

    /** Resident set size now in bytes, or -1. */
    public static long currentBytes() {
        return field("VmRSS:");
    }

    /** Bytes of a "Name:   1234 kB" line of /proc/self/status. */
    static long field(String name) {
        try {
            for (String line : Files.readAllLines(STATUS)) {
                if (line.startsWith(name)) {
                    return parseKb(line.substring(name.length()));
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    static long parseKb(String value) {
        String v = value.trim();
        if (!v.endsWith("kB")) {
            throw new IllegalArgumentException("not a kB value: " + value);
        }
        return Long.parseLong(v.substring(0, v.length() - 2).trim()) * 1024;
    }

    /** "3.41 GB" (decimal gigabytes, as the targets), or "n/a". */
    public static String format(long bytes) {
        return bytes < 0 ? "n/a" : String.format("%.2f GB", bytes / 1e9);
    }
}
