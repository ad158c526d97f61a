package jdiffusion.tensor;

/** For tests that switch a kernel path through a system property. */
final class SystemProperties {
    private SystemProperties() {
    }

    /** Puts property name back to value, as read before the test changed it (null: it was not set). */
    static void restore(String name, String value) {
        if (value == null) {
            System.clearProperty(name);
        } else {
            System.setProperty(name, value);
        }
    }
}
