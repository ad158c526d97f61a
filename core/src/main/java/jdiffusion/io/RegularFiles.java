package jdiffusion.io;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;

/**
 * The check made before any file is opened for reading: opening a FIFO blocks until a writer appears, and reading a
 * device or a directory never gives a model or an image, so only regular files (or links to them) are opened.
 */
public final class RegularFiles {
    private RegularFiles() {
    }

    /** Null when path is a readable regular file (links followed), else what it is, e.g. "is a FIFO (named pipe)". */
    public static String problem(Path path) {
        BasicFileAttributes a;
        try {
            a = Files.readAttributes(path, BasicFileAttributes.class);
        } catch (java.nio.file.NoSuchFileException e) {
            return Files.isSymbolicLink(path) ? "is a broken symbolic link" : "file not found";
        } catch (IOException e) {
            return "cannot read file (" + (e.getMessage() == null ? e.toString() : e.getMessage()) + ")";
        }
        if (a.isDirectory()) {
            return "is a directory, not a file";
        }
        if (!a.isRegularFile()) {
            return "is " + kind(path) + ", not a regular file";
        }
        if (!Files.isReadable(path)) {
            return "file is not readable (permission denied)";
        }
        return null;
    }

    /** Throws {@link ModelFormatException} "PATH: is a FIFO (named pipe), not a regular file" and the like. */
    public static void require(Path path) throws ModelFormatException {
        String p = problem(path);
        if (p != null) {
            throw new ModelFormatException(path + ": " + p);
        }
    }

    private static String kind(Path path) {
        try {
            Object mode = Files.getAttribute(path, "unix:mode", LinkOption.values());
            int type = ((Integer) mode) & 0170000;
            return switch (type) {
                case 0010000 -> "a FIFO (named pipe)";
                case 0020000 -> "a character device";
                case 0060000 -> "a block device";
                case 0140000 -> "a socket";
                default -> "a special file";
            };
        } catch (IOException | RuntimeException e) {
            return "a special file";
        }
    }
}
