/*
 * attack-image: run inside a function container as ROOT with podman's default capabilities (issue
 * 13 acceptance 3). It finds the plan images the instance (pid 1 of the container) holds open and
 * tries every way a root without CAP_LINUX_IMMUTABLE has to change one: reopen the fd for writing,
 * truncate, chmod, chown, clear the immutable flag, a shared writable mapping, and, through the
 * image directory when the test mounts it (argv[1]), write, unlink and rename the file by name.
 * Prints one line per attempt; exit 0 only when at least one image was found and every attempt was
 * refused, 1 when one succeeded, 2 when no image was found.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;

static void outcome(const char *what, const char *path, int rc)
{
    if (rc < 0) {
        printf("refused  %-24s %s: %s\n", what, path, strerror(errno));
    } else {
        printf("ALLOWED  %-24s %s\n", what, path);
        failures++;
    }
}

/* Every write an fd-holder can try on the open file /proc/1/fd/N (path). */
static void attack_fd_path(const char *path)
{
    int fd = open(path, O_RDWR);
    outcome("reopen O_RDWR", path, fd);
    if (fd >= 0)
        close(fd);
    fd = open(path, O_WRONLY | O_APPEND);
    outcome("reopen O_WRONLY|O_APPEND", path, fd);
    if (fd >= 0)
        close(fd);
    outcome("truncate", path, truncate(path, 0));
    int ro = open(path, O_RDONLY);
    if (ro < 0) {
        outcome("reopen O_RDONLY (setup)", path, -1);
        failures++;
        return;
    }
    outcome("fchmod 0666", path, fchmod(ro, 0666));
    outcome("fchown 0:0", path, fchown(ro, 0, 0));
    int flags = 0;
    int rc = ioctl(ro, FS_IOC_GETFLAGS, &flags);
    if (rc == 0 && !(flags & FS_IMMUTABLE_FL)) {
        printf("ALLOWED  %-24s %s: not sealed (FS_IMMUTABLE_FL missing)\n", "sealed", path);
        failures++;
    }
    flags &= ~FS_IMMUTABLE_FL;
    outcome("FS_IOC_SETFLAGS -i", path, ioctl(ro, FS_IOC_SETFLAGS, &flags));
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
    outcome("mmap PROT_WRITE shared", path, m == MAP_FAILED ? -1 : 0);
    if (m != MAP_FAILED)
        munmap(m, 4096);
    close(ro);
}

/* The same by name in the image directory the test mounted, plus unlink and rename. */
static void attack_by_name(const char *dir, const char *name)
{
    char path[PATH_MAX], to[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
        snprintf(to, sizeof(to), "%s/%s.moved", dir, name) >= (int)sizeof(to))
        return;
    attack_fd_path(path);
    outcome("unlink", path, unlink(path));
    outcome("rename", path, rename(path, to));
    outcome("chmod 0666", path, chmod(path, 0666));
}

int main(int argc, char **argv)
{
    const char *image_dir = argc > 1 ? argv[1] : NULL;
    DIR *d = opendir("/proc/1/fd");
    if (!d) {
        perror("/proc/1/fd");
        return 2;
    }
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char fdpath[sizeof("/proc/1/fd/") + sizeof(e->d_name)], target[PATH_MAX];
        snprintf(fdpath, sizeof(fdpath), "/proc/1/fd/%s", e->d_name);
        ssize_t n = readlink(fdpath, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        struct stat st;
        /* A plan image: a regular file the instance holds open under the store's image dir. */
        if (stat(fdpath, &st) < 0 || !S_ISREG(st.st_mode) || !strstr(target, ".plan"))
            continue;
        found++;
        printf("image    %s -> %s (%lld bytes, mode %o, uid %u)\n", fdpath, target,
               (long long)st.st_size, st.st_mode & 07777, st.st_uid);
        attack_fd_path(fdpath);
        const char *base = strrchr(target, '/');
        if (image_dir && base)
            attack_by_name(image_dir, base + 1);
    }
    closedir(d);
    if (!found) {
        printf("no plan image open in pid 1\n");
        return 2;
    }
    printf("%d image(s), %d attempt(s) allowed\n", found, failures);
    return failures ? 1 : 0;
}
