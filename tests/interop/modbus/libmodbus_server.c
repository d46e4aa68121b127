/*
 * A Modbus TCP server built on libmodbus, an independent stack for the center's driver to poll
 * and write. Usage: libmodbus_server <port> (0: any free port). Prints "PORT <n>" once
 * listening, then serves its clients until killed.
 *
 * Registers are filled by hand, high word first and each register high byte first (MAP 4.2),
 * rather than with libmodbus' float helpers, whose byte order differs between releases.
 *
 * Holding registers (input registers hold the same layout with other values):
 *   0 uint16 1234 | 1 int16 -1234 | 2-3 uint32 305419896 | 4-5 int32 -123456
 *   6-7 float32 21.5 | 8-11 float64 -1234.5678 | 12 bits 0b1010 | 20-21 float32 -7.25 low word
 *   first. Coils 0..2: 1 0 1; discrete inputs 0..2: 0 1 1. 64 registers and 16 bits of each
 *   table: anything beyond answers exception 2 (illegal data address).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <modbus.h>

static void put_u32(uint16_t *regs, uint32_t value) {
    regs[0] = (uint16_t)(value >> 16);
    regs[1] = (uint16_t)(value & 0xFFFF);
}

static void put_f32(uint16_t *regs, float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    put_u32(regs, bits);
}

static void put_f64(uint16_t *regs, double value) {
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    for (int word = 0; word < 4; word++) {
        regs[word] = (uint16_t)(bits >> (48 - 16 * word));
    }
}

static void fill(uint16_t *regs, uint16_t first, float f32, double f64) {
    regs[0] = first;
    regs[1] = (uint16_t)(int16_t)-1234;
    put_u32(regs + 2, 305419896u);
    put_u32(regs + 4, (uint32_t)(int32_t)-123456);
    put_f32(regs + 6, f32);
    put_f64(regs + 8, f64);
    regs[12] = 0x000A;
    put_f32(regs + 20, -7.25f);
    uint16_t high = regs[20];
    regs[20] = regs[21];
    regs[21] = high;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", port);
    modbus_mapping_t *map = modbus_mapping_new(16, 16, 64, 64);
    if (ctx == NULL || map == NULL) {
        fprintf(stderr, "libmodbus: %s\n", modbus_strerror(errno));
        return 1;
    }
    fill(map->tab_registers, 1234, 21.5f, -1234.5678);
    fill(map->tab_input_registers, 4321, 3.25f, 0.125);
    map->tab_bits[0] = 1;
    map->tab_bits[2] = 1;
    map->tab_input_bits[1] = 1;
    map->tab_input_bits[2] = 1;

    int listener = modbus_tcp_listen(ctx, 1);
    if (listener < 0) {
        fprintf(stderr, "listen: %s\n", modbus_strerror(errno));
        return 1;
    }
    struct sockaddr_in bound;
    socklen_t size = sizeof bound;
    getsockname(listener, (struct sockaddr *)&bound, &size);
    printf("PORT %d\n", ntohs(bound.sin_port));
    fflush(stdout);

    /* Several clients at once, each socket served in turn as its requests arrive. */
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    fd_set open_sockets;
    FD_ZERO(&open_sockets);
    FD_SET(listener, &open_sockets);
    int highest = listener;
    for (;;) {
        fd_set ready = open_sockets;
        if (select(highest + 1, &ready, NULL, NULL, NULL) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return 1;
        }
        for (int fd = 0; fd <= highest; fd++) {
            if (!FD_ISSET(fd, &ready)) {
                continue;
            }
            if (fd == listener) {
                int client = accept(listener, NULL, NULL);
                if (client >= 0) {
                    FD_SET(client, &open_sockets);
                    highest = client > highest ? client : highest;
                }
                continue;
            }
            modbus_set_socket(ctx, fd);
            int length = modbus_receive(ctx, query);
            if (length > 0) {
                modbus_reply(ctx, query, length, map);
            } else if (length == -1) {
                close(fd); /* the client closed the connection */
                FD_CLR(fd, &open_sockets);
            }
        }
    }
}
