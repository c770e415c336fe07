/*
 * test_iftab.c - the interface name table against this namespace's own interfaces, read only
 * (rtnetlink dumps and link events need no privilege): lo is index 1 in every namespace, and
 * what if_indextoname says, iftab says. Creating and deleting interfaces is for
 * tests/netns/group_iface_follow.test.sh.
 */
#include <net/if.h>
#include <string.h>

#include "check.h"
#include "dotgw/iftab.h"

int main(void)
{
	struct if_nameindex *all = if_nameindex();
	struct iftab *t;
	const char *name;

	CHECK_EQ(iftab_open(&t), 0);
	CHECK(iftab_fd(t) >= 0);
	CHECK_EQ(iftab_process(t), 0); /* nothing pending: returns at once */
	name = iftab_name(t, 1);
	CHECK(name && strcmp(name, "lo") == 0);
	CHECK(iftab_name(t, 0) == NULL);
	CHECK(iftab_name(t, 0x7ffffff0u) == NULL);
	for (struct if_nameindex *i = all; i && i->if_index; i++) {
		name = iftab_name(t, i->if_index);
		CHECK(name && strcmp(name, i->if_name) == 0);
	}
	if (all)
		if_freenameindex(all);
	iftab_close(t);
	iftab_close(NULL);
	return check_done("iftab");
}
