/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * chase.c MIB [HUGE]: the latency of dependent loads over an array of MIB
 * MiB, one load a cache line in a random cycle, on 4 KiB pages (HUGE 0)
 * or transparent huge pages (HUGE 1). What the last level of this machine
 * holds for one thread, and what a page walk costs when it does
 * (BENCHMARKS.md, "Issue 17: what this VM's last level holds").
 *
 *   gcc -O2 userspace/scripts/experiments/chase.c -o /tmp/chase
 *   for m in 1 2 4 8 16 64; do taskset -c 1 /tmp/chase $m 0; done
 *   for m in 2 4 8 64; do taskset -c 1 /tmp/chase $m 1; done
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <sys/mman.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
int main(int argc,char**argv){
  size_t mb=atoi(argv[1]); int huge=argc>2?atoi(argv[2]):0;
  size_t n=mb*1024*1024/64; // one entry per line
  uint64_t *a=mmap(0,n*64+(2<<20),PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  if(huge) madvise(a,n*64,MADV_HUGEPAGE); else madvise(a,n*64,MADV_NOHUGEPAGE);
  uint32_t *perm=malloc(n*4); for(size_t i=0;i<n;i++)perm[i]=i;
  srand(1); for(size_t i=n-1;i>0;i--){size_t j=((size_t)rand()*RAND_MAX+rand())%(i+1);uint32_t t=perm[i];perm[i]=perm[j];perm[j]=t;}
  for(size_t i=0;i<n;i++) a[perm[i]*8]=perm[(i+1)%n]*8;
  size_t p=0; for(size_t i=0;i<n;i++)p=a[p];
  size_t steps=20000000; double t0=now(); for(size_t i=0;i<steps;i++)p=a[p]; double t1=now();
  printf("%zu MiB huge=%d: %.1f ns/load (%zu)\n",mb,huge,(t1-t0)/steps,p&1);
}
