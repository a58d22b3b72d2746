/*
 * floor: the latency benchmark's floor (scripts/bench/latency.sh). A raw
 * AF_PACKET socket on one interface with a kernel filter for EtherType RARP
 * (every EtherType, as libpcap binds: a bridge port hands frames of a bound
 * EtherType to the bridge, not to the socket), a blocking recv in a tight
 * loop, and each RARP answered with one prebuilt frame (a
 * unicast ARP request to the announced MAC, as rarp-replay's first probe
 * would be): no decode beyond the source MAC, no lookup, no allocation.
 * Nothing a daemon could do to answer a RARP takes less.
 *
 *   floor IFNAME      prints "ready" once bound, then answers until killed
 *
 * Build: gcc -O2 -o floor floor.c
 */
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: floor IFNAME\n");
		return 2;
	}
	int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	if (fd < 0) {
		perror("floor: socket");
		return 1;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", argv[1]);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
		perror("floor: SIOCGIFINDEX");
		return 1;
	}
	int ifindex = ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		perror("floor: SIOCGIFHWADDR");
		return 1;
	}
	struct sockaddr_ll sll;
	memset(&sll, 0, sizeof sll);
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = ifindex;
	if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
		perror("floor: bind");
		return 1;
	}
	/* ether proto 0x8035: what "rarp" compiles to, without the VLAN cases. */
	struct sock_filter code[] = {
		{BPF_LD | BPF_H | BPF_ABS, 0, 0, 12},
		{BPF_JMP | BPF_JEQ | BPF_K, 0, 1, ETH_P_RARP},
		{BPF_RET | BPF_K, 0, 0, 0xffff},
		{BPF_RET | BPF_K, 0, 0, 0},
	};
	struct sock_fprog prog = {sizeof code / sizeof code[0], code};
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0) {
		perror("floor: SO_ATTACH_FILTER");
		return 1;
	}
	int one = 1;
	/* The daemon's handles ignore their own frames in the kernel too. */
	setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);

	/* Ethernet + ARP request: who has 192.0.2.250, tell 192.0.2.1. */
	unsigned char probe[42] = {0};
	memcpy(probe + 6, ifr.ifr_hwaddr.sa_data, 6);
	probe[12] = 0x08, probe[13] = 0x06;             /* ARP */
	probe[14] = 0x00, probe[15] = 0x01;             /* Ethernet */
	probe[16] = 0x08, probe[17] = 0x00;             /* IPv4 */
	probe[18] = 6, probe[19] = 4;                   /* address lengths */
	probe[20] = 0x00, probe[21] = 0x01;             /* request */
	memcpy(probe + 22, ifr.ifr_hwaddr.sa_data, 6);  /* sender MAC */
	probe[28] = 192, probe[29] = 0, probe[30] = 2, probe[31] = 1;
	probe[38] = 192, probe[39] = 0, probe[40] = 2, probe[41] = 250;

	printf("ready\n");
	fflush(stdout);
	unsigned char buf[2048];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0) {
			perror("floor: recv");
			return 1;
		}
		if (n < 42)
			continue;
		memcpy(probe, buf + 6, 6); /* to the announced MAC */
		if (send(fd, probe, sizeof probe, 0) < 0) {
			perror("floor: send");
			return 1;
		}
	}
}
